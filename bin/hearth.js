#!/usr/bin/env node
// hearth runs its TypeScript sources directly through tsx (no build step, no dist/ to go stale).
// Worker threads do not inherit the loader on Node 20; src/runtime/spawn-thread.ts bootstraps them.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv.slice(2));
