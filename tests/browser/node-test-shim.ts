// node:test for a page (tests/unit/webgpu.test.ts bundles the kernel tests with esbuild,
// aliasing node:test to this file): describe/it register tests, runAll runs them in order
// and returns each result, which the Node side reports as its own subtests.
type Fn = () => unknown;
interface Opts {
  skip?: boolean | string;
}
interface Case {
  name: string;
  fn: Fn;
  skip: boolean | string;
}
const cases: Case[] = [];
const prefix: string[] = [];
const befores: Fn[] = [];

function args(a: unknown, b: unknown): [Opts, Fn | undefined] {
  return typeof a === 'function' ? [{}, a as Fn] : [(a ?? {}) as Opts, b as Fn | undefined];
}

export function describe(name: string, a?: Opts | Fn, b?: Fn): void {
  const [opts, fn] = args(a, b);
  if (opts.skip) return;
  prefix.push(name);
  try {
    fn?.();
  } finally {
    prefix.pop();
  }
}
export function it(name: string, a?: Opts | Fn, b?: Fn): void {
  const [opts, fn] = args(a, b);
  cases.push({ name: [...prefix, name].join(' > '), fn: fn ?? (() => {}), skip: opts.skip ?? false });
}
export const test = it;
export function before(fn: Fn): void {
  befores.push(fn);
}
export function after(): void {}

export interface Result {
  name: string;
  ok: boolean;
  skip?: string;
  error?: string;
  ms: number;
}

/** Runs the registered tests whose name contains `filter`, in order. */
export async function runAll(filter = ''): Promise<Result[]> {
  for (const f of befores.splice(0)) await f();
  const out: Result[] = [];
  for (const c of cases) {
    if (!c.name.includes(filter)) continue;
    if (c.skip) {
      out.push({ name: c.name, ok: true, skip: String(c.skip), ms: 0 });
      continue;
    }
    const t0 = performance.now();
    try {
      await c.fn();
      out.push({ name: c.name, ok: true, ms: performance.now() - t0 });
    } catch (e) {
      out.push({ name: c.name, ok: false, error: e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e), ms: performance.now() - t0 });
    }
  }
  return out;
}
