// Loads the C++ addon (build/Release/lorakit.node) and adapts it to the Backend interface.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DType } from '../../tensor/tensor.js';

/** The raw addon: kernel functions with positional arguments (see native/src). */
export type NativeAddon = Record<string, (...args: unknown[]) => unknown> & {
  threads(n?: number): number;
  cpuInfo(): { avx2fma: boolean };
};

export const DTYPE_CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2 };

export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'lorakit') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the lorakit package root (no package.json named "lorakit" above this file)');
    dir = up;
  }
}

export interface NativeLoad {
  addon: NativeAddon | null;
  /** why the addon is not available, when it is not */
  error: string | null;
}

let loaded: NativeLoad | null = null;

export function loadAddon(): NativeLoad {
  if (loaded) return loaded;
  try {
    const file = join(packageRoot(), 'build', 'Release', 'lorakit.node');
    if (!existsSync(file)) {
      loaded = { addon: null, error: `${file} does not exist (the native build did not run or failed; run \`npm run build:native\`)` };
    } else {
      const require = createRequire(import.meta.url);
      loaded = { addon: require(file) as NativeAddon, error: null };
    }
  } catch (e) {
    loaded = { addon: null, error: `loading the native addon failed: ${(e as Error).message}` };
  }
  return loaded;
}
