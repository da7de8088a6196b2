// Fuzzing the header parsers with fast-check: every mutated input must either parse into
// tensors whose storage matches their shapes, or throw the parser's own error naming the file.
// Any other outcome (a TypeError, a RangeError, an out-of-memory, a hang, a native crash that
// kills this process) fails. The runs are seeded, so a failure replays; the counts are the
// "inputs tried" of docs/RELIABILITY.md.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FormatError } from '../../src/io/errors.js';
import { SAFETENSORS_DTYPES, deserializeSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { SafetensorsFile } from '../../src/io/safetensors.node.js';
import { Tensor, numel } from '../../src/tensor/tensor.js';
import { tmpDir, rawSafetensors } from '../helpers/io-tmp.js';

const SEED = 2025;
export const RUNS = { bytes: 10_000, headers: 10_000, file: 1000 };

/** A valid file: three tensors of three dtypes, metadata. */
function validFile(): Uint8Array {
  return serializeSafetensors(
    new Map([
      ['a.weight', Tensor.fromValues([1, 2, 3, 4, 5, 6], [2, 3])],
      ['b.bias', Tensor.fromValues([1, -1, 0.5], [3], 'f16')],
      ['c', Tensor.fromValues([7, 8], [2], 'bf16')],
    ]),
    { metadata: { format: 'pt', note: 'fuzz' } },
  );
}

/** The outcome must be a clean parse or a FormatError naming the input; returns which. */
function check(parse: () => { tensors: Map<string, Tensor> }, label: string): 'ok' | 'error' {
  let out: { tensors: Map<string, Tensor> };
  try {
    out = parse();
  } catch (e) {
    if (!(e instanceof FormatError)) throw new Error(`not a FormatError: ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.ok(e.message.startsWith(`safetensors ${label}`), e.message);
    assert.ok(e.problems.length > 0);
    return 'error';
  }
  for (const [name, t] of out.tensors) assert.equal(t.data.length, numel(t.shape), name);
  return 'ok';
}

const base = validFile();
const headerEnd = 8 + Number(new DataView(base.buffer, base.byteOffset).getBigUint64(0, true));

/** Byte edits (mostly in the length prefix and the header), an optional truncation or extension. */
const mutatedBytes = fc
  .record({
    edits: fc.array(fc.record({ pos: fc.oneof(fc.integer({ min: 0, max: headerEnd - 1 }), fc.integer({ min: 0, max: base.length - 1 })), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
    cut: fc.option(fc.integer({ min: 0, max: base.length }), { nil: null }),
    extra: fc.uint8Array({ maxLength: 16 }),
  })
  .map(({ edits, cut, extra }) => {
    const b = new Uint8Array([...base.subarray(0, cut ?? base.length), ...extra]);
    for (const { pos, byte } of edits) if (pos < b.length) b[pos] = byte;
    return b;
  });

/** Headers built from JSON: plausible tensor records with wrong parts, junk values, a data region and length prefix of any size. */
const index = fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: -4, max: 2 ** 31 }), fc.constantFrom(2 ** 53, 2 ** 53 - 1, 1.5, -0, Number.MAX_SAFE_INTEGER));
const record = fc.record(
  {
    dtype: fc.oneof(fc.constantFrom(...SAFETENSORS_DTYPES), fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 1 })),
    shape: fc.oneof(fc.array(index, { maxLength: 4 }), fc.jsonValue({ maxDepth: 2 })),
    data_offsets: fc.oneof(fc.tuple(index, index), fc.array(index, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
  },
  { requiredKeys: [] },
);
const header = fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__metadata__', '__proto__', 'constructor', '')), fc.oneof({ weight: 4, arbitrary: record }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }), { maxKeys: 5 });
const mutatedHeader = fc
  .record({
    header: fc.oneof({ weight: 5, arbitrary: header }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }),
    data: fc.uint8Array({ maxLength: 96 }),
    prefix: fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { nil: null }),
  })
  .map(({ header, data, prefix }) => rawSafetensors(header, data, prefix === null ? {} : { headerLength: prefix }));

describe('fuzz: safetensors header parser', () => {
  it(`${RUNS.bytes} byte-mutated files: a clean parse or a FormatError, never anything else`, () => {
    const seen = { ok: 0, error: 0 };
    fc.assert(
      fc.property(mutatedBytes, (b) => {
        seen[check(() => deserializeSafetensors(b, 'fuzz.safetensors'), 'fuzz.safetensors')]++;
      }),
      { seed: SEED, numRuns: RUNS.bytes },
    );
    assert.equal(seen.ok + seen.error, RUNS.bytes);
    assert.ok(seen.error > RUNS.bytes / 2, `most mutations should be refused: ${JSON.stringify(seen)}`);
  });

  it(`${RUNS.headers} generated headers (tensor records with junk, wrong length prefixes): a clean parse or a FormatError`, () => {
    const seen = { ok: 0, error: 0 };
    fc.assert(
      fc.property(mutatedHeader, (b) => {
        seen[check(() => deserializeSafetensors(b, 'gen.safetensors'), 'gen.safetensors')]++;
      }),
      { seed: SEED + 1, numRuns: RUNS.headers },
    );
    assert.equal(seen.ok + seen.error, RUNS.headers);
    assert.ok(seen.ok > 0 && seen.error > 0, JSON.stringify(seen));
  });

  it(`${RUNS.file} mutated files read from disk (SafetensorsFile): the same, and the file is closed`, () => {
    const dir = tmpDir('lorakit-fuzz-');
    const file = join(dir, 'm.safetensors');
    const fds = (): number => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0);
    const open = fds();
    fc.assert(
      fc.property(fc.oneof(mutatedBytes, mutatedHeader), (b) => {
        writeFileSync(file, b);
        check(() => {
          const f = SafetensorsFile.open(file);
          try {
            return { tensors: new Map(f.names().filter((k) => ['F32', 'F16', 'BF16'].includes(f.info(k).dtype)).map((k) => [k, f.tensor(k)] as const)) };
          } finally {
            f.close();
          }
        }, file);
      }),
      { seed: SEED + 2, numRuns: RUNS.file },
    );
    assert.equal(fds(), open, 'file descriptors left open');
  });
});
