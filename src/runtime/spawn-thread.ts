import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread running `entry` (a module URL next to the caller).
 *
 * Why not `new Worker(url)` directly: hearth runs its .ts sources through tsx, and on Node 20 a
 * worker thread does not inherit the loader hooks of its parent. When the entry is a .ts file we
 * boot the thread with a tiny ESM snippet that registers tsx first, then imports the entry.
 */
export function spawnThread(entry: URL, options: WorkerOptions = {}): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const boot =
    `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); ` +
    `return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { ...options, eval: true });
}
