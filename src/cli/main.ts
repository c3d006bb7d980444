// The `hearth` command: dispatches `hearth <command> ...` to src/cli/<command>-command.ts.
// Each command module exports `run(argv): Promise<number>` (the exit code) and `usage` (one line).

const COMMANDS = {
  up: 'start NATS, the gateway and local workers on this machine',
  gateway: 'run the API gateway and cluster coordinator',
  worker: 'join a cluster and run a range of the model\'s layers',
  generate: 'generate text in one process (optionally split into stages)',
  bench: 'measure prefill/decode speed and memory (one process, or --cluster)',
  pull: 'download a checkpoint from the Hugging Face Hub',
  models: 'list local checkpoints',
  status: 'show the cluster of a running gateway',
  'make-model': 'write a deterministic random checkpoint (tests, offline demo, benchmarks)',
} as const;
type CommandName = keyof typeof COMMANDS;

interface CommandModule {
  run(argv: string[]): Promise<number>;
}

function help(): string {
  const rows = Object.entries(COMMANDS).map(([name, what]) => `  ${name.padEnd(11)} ${what}`);
  return ['usage: hearth <command> [options]   (hearth <command> --help for its options)', '', ...rows].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(help() + '\n');
    return;
  }
  if (!(cmd in COMMANDS)) {
    process.stderr.write(`hearth: unknown command "${cmd}"\n\n${help()}\n`);
    process.exitCode = 2;
    return;
  }
  const mod = (await import(`./${cmd as CommandName}-command.ts`)) as CommandModule;
  try {
    process.exitCode = await mod.run(rest);
  } catch (e) {
    // HearthErrors are written for people: print the message alone, no stack.
    const err = e as Error & { code?: string };
    const known = typeof err.code === 'string' && err.code.startsWith('HEARTH_ERR_');
    process.stderr.write(`hearth ${cmd}: ${known ? err.message : (err.stack ?? String(e))}\n`);
    process.exitCode = 1;
  }
}
