// `hearth pull ORG/NAME`: download a checkpoint from the Hugging Face Hub (progress on stderr, the
// folder path on stdout so scripts can do `hearth generate --model "$(hearth pull X)"`).
import { parseFlags as parseArgs } from './flags.ts';

import { HearthError } from '../errors/index.ts';
import { createProgressBar, defaultModelsDir, DEFAULT_ENDPOINT, MODELS_DIR_ENV, pullModel } from '../hub/index.ts';

export const usage = `hearth pull ORG/NAME [--revision R] [--dir MODELS_DIR] [--endpoint URL]
Downloads the files a checkpoint needs (config, tokenizer, *.safetensors) from the Hugging Face Hub
into MODELS_DIR/ORG/NAME (default $${MODELS_DIR_ENV} or ~/.cache/hearth/models), resuming an
interrupted pull and verifying every file's checksum. Gated models: set HF_TOKEN.
  --revision R    branch, tag or commit (default main)
  --dir D         models dir
  --endpoint URL  Hub base URL (default $HF_ENDPOINT or ${DEFAULT_ENDPOINT})
  --retries N     resumed retries per file after a network failure (default 3)`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      revision: { type: 'string' },
      dir: { type: 'string' },
      endpoint: { type: 'string' },
      retries: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const id = positionals[0];
  if (values.help === true) {
    process.stdout.write(usage + '\n');
    return 0;
  }
  if (id === undefined || positionals.length > 1) {
    throw new HearthError('HEARTH_ERR_USAGE', [id === undefined ? 'which model? e.g. hearth pull Qwen/Qwen2.5-0.5B-Instruct' : `one model at a time (got ${positionals.length}: ${positionals.join(' ')})`]);
  }
  const retries = values.retries === undefined ? undefined : Number(values.retries);
  if (retries !== undefined && !(Number.isInteger(retries) && retries >= 0)) {
    process.stderr.write(`hearth pull: --retries must be a whole number ≥ 0, got ${values.retries}\n`);
    return 2;
  }
  // Ctrl-C stops cleanly; the .incomplete file stays so the next run resumes.
  const ac = new AbortController();
  const onSigint = (): void => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    const res = await pullModel({
      id,
      modelsDir: values.dir ?? defaultModelsDir(),
      progress: createProgressBar(process.stderr),
      signal: ac.signal,
      ...(values.revision === undefined ? {} : { revision: values.revision }),
      ...(values.endpoint === undefined ? {} : { endpoint: values.endpoint }),
      ...(retries === undefined ? {} : { retries }),
    });
    process.stdout.write(res.dir + '\n');
    process.stderr.write(`ready: hearth up --model ${res.dir}\n`);
    return 0;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
