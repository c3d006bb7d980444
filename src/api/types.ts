import type { FastifyInstance } from 'fastify';
import type { LoggerOptions } from 'pino';
import type { Generator } from '../scheduler/types.ts';
import type { ResponseStore } from './response-store.ts';
import type { McpOptions } from './responses-mcp-route.ts';
import type { ChatTemplate, Tokenizer } from '../tokenizer/types.ts';

/** The one model a gateway serves. */
export interface ServedModel {
  /** The id clients send as `model` and `GET /v1/models` lists. */
  readonly id: string;
  /** Checkpoint family (llama, qwen2, qwen3, mistral): picks the tool-call syntax with the template. */
  readonly family: string;
  readonly contextLength: number;
  readonly tokenizer: Tokenizer;
  readonly template: ChatTemplate;
  /** The chat template's jinja source (tool-call syntax detection). */
  readonly templateSource: string;
  /** Unix seconds (the `created` of the model object). */
  readonly created: number;
  /** Said wherever the model is listed (the offline demo: "its text is random"). */
  readonly notice?: string;
  /** How /v1/embeddings and Ollama's /api/embed pool hidden states (the checkpoint's own
   *  sentence-transformers config; see embeddings-pooling.ts), and the embedding's width (the
   *  hidden size). Absent: mean pooling, width as computed. */
  readonly embeddings?: { readonly pooling: import('./embeddings-pooling.ts').Pooling; readonly dimensions: number };
}

export interface ApiLimits {
  /** Largest request body accepted (413 beyond). */
  readonly bodyBytes: number;
  /** Whole request (headers + body) must arrive within this; 408 after (default 120 s). */
  readonly requestTimeoutMs?: number;
  /** A request body silent this long closes the connection (default 30 s). */
  readonly bodyIdleMs?: number;
  /** Completion tokens when the request gives no max_tokens (clamped to the context left); null = up to the context's end. */
  readonly maxTokensDefault: number | null;
  /** Most completion tokens one choice may ask for; a larger max_tokens is a 400 naming it (null/absent = no cap). */
  readonly maxTokens?: number | null;
  /** Responses tools hearth cannot run (web_search...): dropped with a notice (default) or a 400. */
  readonly hostedTools?: 'drop' | 'refuse';
  /** Sequences allowed to wait for a slot; beyond that requests get 429 + Retry-After. */
  readonly maxQueue: number;
  /** Sequences generating at once. */
  readonly maxConcurrent: number;
  /** Slots the n choices of one request may hold at once (null/absent = half of maxConcurrent). */
  readonly maxPerRequest?: number | null;
}

export const DEFAULT_LIMITS: ApiLimits = Object.freeze({ bodyBytes: 4 * 1024 * 1024, maxTokensDefault: 1024, maxQueue: 64, maxConcurrent: 16 });

export interface AppOptions {
  readonly model: ServedModel;
  readonly generator: Generator;
  /** Accepted API keys; empty = no auth (the CLI refuses that beyond loopback). */
  readonly apiKeys: readonly string[];
  readonly limits: ApiLimits;
  /** Body of GET /v1/cluster. */
  readonly cluster?: () => unknown;
  /** Body of GET /v1/cluster/doctor (`hearth doctor` run by the gateway, which may speak to every
   *  node: under per-node credentials nobody else can). */
  readonly clusterDoctor?: () => Promise<unknown>;
  /** Whether a plan can serve (GET /ready). Absent = always ready. */
  readonly ready?: () => boolean;
  /** pino options, or false for no logs (tests). */
  readonly logger?: LoggerOptions | false;
  /** Where unexpected (5xx) errors are logged when `logger` is false (the gateway passes its pino
   *  logger): they must never pass silently. */
  readonly errorLog?: { error(obj: object, msg: string): void; warn?(obj: object, msg: string): void };
  /** Log prompts and completions (off by default: they are the user's data). */
  readonly logPrompts?: boolean;
  /** One access-log line per request at info (observability/access-log.ts); the gateway passes its logger. */
  readonly accessLog?: { info(obj: object, msg: string): void };
  /** More routes (metrics, status page, weights); registered after the API's own. */
  readonly extraRoutes?: (app: FastifyInstance) => Promise<void>;
  /** Where `store: true` Responses live (default: in this process; the gateway passes NATS KV). */
  readonly responseStore?: ResponseStore;
  /** The operator's MCP servers and the bounds on a response's MCP work (default: none configured). */
  readonly mcp?: McpOptions;
  /** Called for each finished request (metrics): route, HearthError code or null, tokens. */
  readonly onRequestDone?: (info: RequestDoneInfo) => void;
}

export interface RequestDoneInfo {
  readonly route: 'chat' | 'completions' | 'responses' | 'messages';
  readonly stream: boolean;
  readonly status: number;
  /** HearthError code when it failed. */
  readonly error: string | null;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Milliseconds from the request to the first token (null when none came). */
  readonly ttftMs: number | null;
  readonly durationMs: number;
}
