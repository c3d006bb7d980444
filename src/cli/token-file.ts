import { readFileSync } from 'node:fs';
import { HearthError } from '../errors/index.ts';

/** The cluster token a worker or the doctor uses: the file named by --token-file, else
 *  HEARTH_TOKEN (a command line is readable by every user, so neither takes it from argv here). */
export function clusterToken(tokenFile: string | undefined): string {
  if (tokenFile === undefined) return process.env['HEARTH_TOKEN'] ?? '';
  try {
    return readFileSync(tokenFile, 'utf8').trim();
  } catch (e) {
    throw new HearthError('HEARTH_ERR_USAGE', [`--token-file: cannot read ${tokenFile} (${(e as Error).message})`]);
  }
}
