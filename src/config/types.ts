// The shape of a validated config. config/schema.json is the source of truth for defaults and
// allowed values; test/config-load.test.ts checks this type's keys against the schema's.

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const PROVIDERS = ['cpu', 'cuda'] as const;
export type Provider = (typeof PROVIDERS)[number];

export const QUANT_MODES = ['none', 'int4'] as const;
export type QuantMode = (typeof QUANT_MODES)[number];

export interface ServerConfig {
  host: string;
  port: number;
  apiKeys: string[];
  insecure: boolean;
  drainMs: number;
  ui: boolean;
  /** Responses hosted tools hearth cannot run: dropped with a notice, or a 400. */
  hostedTools: 'drop' | 'refuse';
}

export interface ModelSection {
  /** null = serve the generated offline demo checkpoint. */
  dir: string | null;
  /** null = the checkpoint folder's name. */
  id: string | null;
  quant: QuantMode;
  /** null = the checkpoint's max_position_embeddings. */
  maxContext: number | null;
}

export interface TlsConfig {
  enabled: boolean;
  ca: string | null;
  cert: string | null;
  key: string | null;
}

export interface ClusterSection {
  name: string;
  /** null = `hearth up` starts a private nats-server. */
  natsUrl: string | null;
  /** Listen address of `hearth up`'s private nats-server. */
  natsHost: string;
  /** Its port; 0 = a free one. */
  natsPort: number;
  /** null = `hearth up` generates one. */
  token: string | null;
  workers: number;
  heartbeatMs: number;
  lostAfterMs: number;
  /** fastest = the plan predicted to decode fastest; balanced = every helpful device gets a share. */
  plan: 'fastest' | 'balanced';
  /** Fraction of sequences the gateway recomputes to check the nodes' work (0 = off). */
  spotCheckRate: number;
  /** The most memory (MiB) the gateway's spot-check engines hold at once (one stage at a time when
   *  the stages do not all fit; a stage larger than this goes unchecked). */
  spotCheckMemoryMb: number;
  tls: TlsConfig;
}

export interface WorkerSection {
  /** null = number of CPU cores. */
  threads: number | null;
  /** null = 75% of free memory at start. */
  memoryBytes: number | null;
  /** null = ~/.cache/hearth/stages. */
  cacheDir: string | null;
  provider: Provider;
}

export interface LimitsConfig {
  bodyBytes: number;
  /** Whole request (headers + body) must arrive within this (408 after). */
  requestTimeoutMs: number;
  /** A request body silent this long closes the connection. */
  bodyIdleMs: number;
  maxConcurrentSequences: number;
  /** null = half of maxConcurrentSequences. */
  maxSequencesPerRequest: number | null;
  maxQueue: number;
  /** null = no cap beyond the context. */
  maxTokens: number | null;
  /** null = up to the context's end. */
  defaultMaxTokens: number | null;
  prefillChunk: number;
  /** Speculative decoding: most draft tokens verified per decode step (0 = off). */
  speculativeDraft: number;
}

export interface LoggingConfig {
  level: LogLevel;
  pretty: 'auto' | boolean;
  logPrompts: boolean;
}

export interface MetricsConfig {
  enabled: boolean;
}

export interface McpSection {
  /** An mcpServers JSON file; null = no configured servers. */
  configFile: string | null;
  /** Most model turns in one response with MCP tools. */
  maxRounds: number;
  /** Time for all MCP work of one response. */
  timeoutMs: number;
}

export interface HearthConfig {
  server: ServerConfig;
  model: ModelSection;
  cluster: ClusterSection;
  worker: WorkerSection;
  limits: LimitsConfig;
  logging: LoggingConfig;
  metrics: MetricsConfig;
  mcp: McpSection;
}

