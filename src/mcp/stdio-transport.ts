import { spawn, type ChildProcess } from 'node:child_process';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

// An MCP stdio transport (newline-delimited JSON-RPC on the child's stdin/stdout, per
// https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#stdio) that gives the
// server exactly the environment the operator configured plus PATH. The SDK's own
// StdioClientTransport merges in HOME, USER, SHELL, TERM and LOGNAME (getDefaultEnvironment), and
// hearth's threat model promises a configured server nothing it was not given.

export interface StdioSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

/** The child's whole environment: the config's env, plus PATH (so `npx`/`uvx` resolve) unless set. */
export function stdioEnvironment(spec: Pick<StdioSpec, 'env'>, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = { ...spec.env };
  if (env['PATH'] === undefined && parent['PATH'] !== undefined) env['PATH'] = parent['PATH'];
  return env;
}

export class ExactEnvStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private child: ChildProcess | null = null;
  private readonly buffer = new ReadBuffer();
  /** The last stderr lines (a failing server says why there); never logged with requests. */
  stderrTail = '';

  constructor(private readonly spec: StdioSpec) {}

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.spec.command, [...this.spec.args], {
        env: stdioEnvironment(this.spec),
        stdio: ['pipe', 'pipe', 'pipe'],
        shell: false,
        windowsHide: true,
        ...(this.spec.cwd === undefined ? {} : { cwd: this.spec.cwd }),
      });
      this.child = child;
      child.on('error', (e) => {
        reject(e);
        this.onerror?.(e);
      });
      child.on('spawn', () => resolve());
      child.on('close', () => {
        this.child = null;
        this.onclose?.();
      });
      child.stdin?.on('error', (e) => this.onerror?.(e));
      child.stdout?.on('data', (chunk: Buffer) => {
        this.buffer.append(chunk);
        for (;;) {
          let msg: JSONRPCMessage | null;
          try {
            msg = this.buffer.readMessage();
          } catch (e) {
            this.onerror?.(e as Error);
            continue;
          }
          if (msg === null) break;
          this.onmessage?.(msg);
        }
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        this.stderrTail = (this.stderrTail + chunk.toString()).slice(-2000);
      });
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    return new Promise((resolve, reject) => {
      const stdin = this.child?.stdin;
      if (stdin === null || stdin === undefined) return reject(new Error('MCP stdio server is not running'));
      if (stdin.write(serializeMessage(message))) resolve();
      else stdin.once('drain', () => resolve());
    });
  }

  async close(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    child.stdin?.end();
    // A server that ignores end of input is asked, then told, to stop (as the SDK does).
    const gone = new Promise<void>((r) => child.once('close', () => r()));
    const term = setTimeout(() => child.kill('SIGTERM'), 2000);
    const kill = setTimeout(() => child.kill('SIGKILL'), 4000);
    await gone;
    clearTimeout(term);
    clearTimeout(kill);
    this.buffer.clear();
  }
}
