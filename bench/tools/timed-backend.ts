// A backend with every kernel wrapped in a timer, for the profiling tools (kernel-profile.ts,
// prompt-profile.ts): the given backend as it was (name, threads and memory read through),
// each kernel call reported to `onCall` with its name, arguments and milliseconds while
// `on()` is true, and passed straight through otherwise.
import type { Backend } from '../../src/backend/index.js';

export function timedBackend(base: Backend, on: () => boolean, onCall: (key: string, args: unknown[], ms: number) => void): Backend {
  const wrapped: Record<string, unknown> = {};
  for (const key of Object.keys(base) as (keyof Backend)[]) {
    const v = base[key] as unknown;
    if (typeof v !== 'function') continue;
    const fn = v as (...x: unknown[]) => unknown;
    wrapped[key] = (...a: unknown[]): unknown => {
      if (!on()) return fn.apply(base, a);
      const t0 = performance.now();
      try {
        return fn.apply(base, a);
      } finally {
        onCall(key, a, performance.now() - t0);
      }
    };
  }
  return Object.create(base, Object.fromEntries(Object.entries(wrapped).map(([k, f]) => [k, { value: f, enumerable: true }]))) as Backend;
}
