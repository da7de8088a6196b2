// lorakit backend: which compute backend is in use and why.
import { Command } from 'commander';
import { getBackend } from '../../backend/index.js';
import { nativeBackend, nativeError } from '../../backend/native/select.js';

export function backendCommand(): Command {
  return new Command('backend').description('show which compute backend lorakit uses and why').action(() => {
    const b = getBackend();
    const n = nativeBackend();
    console.log(`backend: ${b.name}`);
    console.log(`threads: ${b.threads}`);
    if (n) console.log(`cpu: ${n.avx2fma ? 'AVX2+FMA kernels' : 'portable kernels (no AVX2/FMA)'}`);
    else console.log(`native addon: unavailable (${nativeError()})`);
  });
}
