// MCP test fixtures: the real @modelcontextprotocol/server-everything from npm, as a stdio command
// for an mcpServers config file, or started over Streamable HTTP on a free loopback port.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from './nats.ts';

interface Tap {
  teardown(fn: () => unknown): void;
}

export const EVERYTHING = path.join(repoRoot, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

/** An mcpServers entry running server-everything over stdio with `env`. */
export function everythingStdio(env: Record<string, string> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { command: process.execPath, args: [EVERYTHING, 'stdio'], env, ...extra };
}

/** Writes an mcpServers file; returns its path. */
export function writeMcpConfig(servers: Record<string, unknown>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'hearth-mcp-'));
  const file = path.join(dir, 'mcp.json');
  writeFileSync(file, JSON.stringify({ mcpServers: servers }, null, 2));
  return file;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * server-everything over Streamable HTTP (its /mcp URL) or the older HTTP+SSE transport (its /sse
 * URL) on 127.0.0.1; resolves once it listens.
 */
export async function startEverythingHttp(t: Tap, mode: 'streamableHttp' | 'sse' = 'streamableHttp'): Promise<string> {
  const port = await freePort();
  const child = spawn(process.execPath, [EVERYTHING, mode], { env: { PATH: process.env['PATH'] ?? '', PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server-everything did not listen in 30 s: ${log}`)), 30_000);
    const onData = (b: Buffer): void => {
      log += b.toString();
      if (/listening on port|running on port/i.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => reject(new Error(`server-everything exited (${code}): ${log}`)));
  });
  return `http://127.0.0.1:${port}/${mode === 'sse' ? 'sse' : 'mcp'}`;
}
