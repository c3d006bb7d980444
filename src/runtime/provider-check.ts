// Can this machine run an execution provider? Asked once when a worker starts, so `--provider cuda`
// without onnxruntime-node's CUDA build fails at start with the reason and the command that fixes
// it, not at the first assignment deep inside a load.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Provider } from './types.ts';

/** What installs the CUDA build into this checkout (onnxruntime-node's own install script). */
export const CUDA_INSTALL_COMMAND = 'ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js';

/** null when `provider` works here, else why not (one sentence, with the fix). */
export async function providerProblem(provider: Provider): Promise<string | null> {
  if (provider === 'cpu') return null;
  const pkg = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  const lib = path.join(pkg, 'bin', 'napi-v6', os.platform(), os.arch(), 'libonnxruntime_providers_cuda.so');
  if (!existsSync(lib)) {
    return `onnxruntime-node's CUDA build is not installed here (the npm package holds the CPU build; npm ci skips the CUDA download). ` +
      `On a machine with an NVIDIA GPU, CUDA 12 and internet, run in the checkout: ${CUDA_INSTALL_COMMAND}`;
  }
  try {
    const { probeProvider } = await import('./shard-session.ts');
    await probeProvider(provider);
    return null;
  } catch (e) {
    return `${(e as Error).message.split('\n')[0] ?? ''} (is an NVIDIA driver with CUDA 12 and cuDNN 9 installed? nvidia-smi should list the GPU)`;
  }
}
