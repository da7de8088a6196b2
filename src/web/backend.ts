// The browser entry's backend choice (docs/ARCHITECTURE.md §Platforms and entry points,
// §Browser). The worker calls installBrowserBackend before it loads a model. Each kind has an
// async loader (a WebAssembly backend compiles its module first); 'auto' takes the fastest
// that loads, else the reference backend, and says why.
import { refBackend, setBackend, type Backend } from '../backend/index.js';
import type { BackendChoice, BackendInfo } from './protocol.js';

type Loader = () => Promise<Backend>;

/** Loaders in order of preference for 'auto'. The reference backend always loads. */
const loaders = new Map<string, Loader>([['ref', async () => refBackend]]);

/** Adds a backend the browser entry can choose (first in 'auto' order when `preferred`). */
export function registerBrowserBackend(name: string, load: Loader, preferred = true): void {
  const rest = [...loaders].filter(([n]) => n !== name);
  loaders.clear();
  for (const [n, l] of preferred ? [[name, load] as const, ...rest] : [...rest, [name, load] as const]) loaders.set(n, l);
}

/** Sets the backend for this thread; returns which one and why. */
export async function installBrowserBackend(choice: BackendChoice): Promise<BackendInfo> {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  if (choice !== 'auto') {
    const load = loaders.get(choice);
    if (!load) throw new Error(`backend "${choice}" is not available in this build (available: ${[...loaders.keys()].join(', ')})`);
    const b = setBackend(await load());
    return { name: b.name, why: `asked for ${choice}`, crossOriginIsolated: isolated };
  }
  const failures: string[] = [];
  for (const [name, load] of loaders) {
    try {
      const b = setBackend(await load());
      const why = name === 'ref' ? (failures.length ? `fallback: ${failures.join('; ')}` : 'the only backend in this build (the WebAssembly backend is pending)') : 'fastest available';
      return { name: b.name, why, crossOriginIsolated: isolated };
    } catch (e) {
      failures.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(`no backend loaded: ${failures.join('; ')}`);
}
