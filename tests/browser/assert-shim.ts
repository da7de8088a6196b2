// node:assert/strict for a page (see node-test-shim.ts): the assertions the kernel and
// training tests use, with Node's meaning (strict equality, deep equality of arrays and
// plain objects, regular-expression matches, throws and rejects).
export class AssertionError extends Error {}

function fail(message?: string | Error): never {
  if (message instanceof Error) throw message;
  throw new AssertionError(message ?? 'Failed');
}
function show(x: unknown): string {
  try {
    return typeof x === 'string' ? JSON.stringify(x) : (JSON.stringify(x) ?? String(x));
  } catch {
    return String(x);
  }
}
function deepEq(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEq((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
function matches(e: unknown, want?: RegExp | ((e: unknown) => boolean) | object): boolean {
  if (want === undefined) return true;
  if (want instanceof RegExp) return want.test(e instanceof Error ? e.message : String(e));
  if (typeof want === 'function') return (want as (e: unknown) => boolean)(e) !== false;
  return Object.entries(want).every(([k, v]) => (v instanceof RegExp ? v.test(String((e as Record<string, unknown>)[k])) : deepEq((e as Record<string, unknown>)[k], v)));
}

function assert(value: unknown, message?: string | Error): asserts value {
  if (!value) fail(message ?? `expected a truthy value, got ${show(value)}`);
}
assert.ok = (value: unknown, message?: string | Error): void => assert(value, message);
assert.fail = fail;
assert.equal = (a: unknown, b: unknown, message?: string | Error): void => {
  if (!Object.is(a, b)) fail(message ?? `${show(a)} !== ${show(b)}`);
};
assert.notEqual = (a: unknown, b: unknown, message?: string | Error): void => {
  if (Object.is(a, b)) fail(message ?? `${show(a)} === ${show(b)}`);
};
assert.deepEqual = (a: unknown, b: unknown, message?: string | Error): void => {
  if (!deepEq(a, b)) fail(message ?? `not deep-equal:\n${show(a)}\n${show(b)}`);
};
assert.match = (s: string, re: RegExp, message?: string | Error): void => {
  if (!re.test(s)) fail(message ?? `${show(s)} does not match ${re}`);
};
assert.throws = (fn: () => unknown, want?: RegExp | ((e: unknown) => boolean) | object, message?: string): void => {
  try {
    fn();
  } catch (e) {
    if (!matches(e, want)) fail(message ?? `threw ${String(e)}, which does not match ${String(want)}`);
    return;
  }
  fail(message ?? 'expected a throw');
};
assert.rejects = async (p: Promise<unknown> | (() => Promise<unknown>), want?: RegExp | ((e: unknown) => boolean) | object, message?: string): Promise<void> => {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (!matches(e, want)) fail(message ?? `rejected with ${String(e)}, which does not match ${String(want)}`);
    return;
  }
  fail(message ?? 'expected a rejection');
};
assert.strict = assert;
export default assert;
