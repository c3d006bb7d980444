// The `hearth` command: dispatches `hearth <command> ...` to src/cli/<command>-command.ts.
// Each command module exports `run(argv): Promise<number>` (the exit code) and `usage` (one line).
// Every error is one line plus a hint (`hearth CMD --help`); a stack only with HEARTH_DEBUG=1.

import { closest } from './flags.ts';

const COMMANDS = {
  up: 'start NATS, the gateway and local workers on this machine',
  gateway: 'run the API gateway and cluster coordinator',
  worker: 'join a cluster and run a range of the model\'s layers',
  generate: 'generate text in one process (optionally split into stages)',
  bench: 'measure prefill/decode speed and memory (one process, or --cluster)',
  eval: 'compare a quantization with the fp32 reference over a text (perplexity, KL, top-1)',
  pull: 'download a checkpoint from the Hugging Face Hub',
  models: 'list local checkpoints',
  status: 'show the cluster of a running gateway',
  doctor: 'check every node and link of a cluster, and say what blocks a join or a plan',
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
    const near = closest(cmd.replace(/^-+/, ''), Object.keys(COMMANDS));
    process.stderr.write(`hearth: unknown command "${cmd}"${near === null ? '' : `; did you mean "${near}"?`} (hearth --help lists the commands)\n`);
    process.exitCode = 2;
    return;
  }
  const mod = (await import(`./${cmd as CommandName}-command.ts`)) as CommandModule;
  try {
    process.exitCode = await mod.run(rest);
  } catch (e) {
    process.stderr.write(`hearth ${cmd}: ${oneLine(e, cmd)}\n`);
    process.exitCode = (e as { code?: string }).code === 'HEARTH_ERR_USAGE' ? 2 : 1;
  }
}

/** HearthErrors are written for people: the message alone, with a hint where one helps. */
function oneLine(e: unknown, cmd: string): string {
  const err = e as Error & { code?: string };
  if (process.env['HEARTH_DEBUG'] === '1') return err.stack ?? String(e);
  const known = typeof err.code === 'string' && err.code.startsWith('HEARTH_ERR_');
  const text = (err.message ?? String(e)).replace(/\s*\n\s*/g, ' ');
  if (!known) return `${text} (HEARTH_DEBUG=1 shows where)`;
  return err.code === 'HEARTH_ERR_USAGE' || err.code === 'HEARTH_ERR_CONFIG' ? `${text} (see hearth ${cmd} --help)` : text;
}
