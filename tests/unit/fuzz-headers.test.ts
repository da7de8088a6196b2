// Fuzzing the header parsers (safetensors, GGUF) with fast-check: every mutated input must either parse into
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
import { GGML_TYPE } from '../../src/io/gguf-blocks.js';
import { GgufFile } from '../../src/io/gguf.node.js';
import { kv, parseGguf, serializeGguf, type GgufHeader } from '../../src/io/gguf.js';
import { SAFETENSORS_DTYPES, deserializeSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { SafetensorsFile } from '../../src/io/safetensors.node.js';
import { Tensor, numel } from '../../src/tensor/tensor.js';
import { tmpDir, rawSafetensors } from '../helpers/io-tmp.js';

const SEED = Number(process.env.LORAKIT_FUZZ_SEED ?? 2025);
/** inputs per property; LORAKIT_FUZZ_SCALE=10 (and LORAKIT_FUZZ_SEED) for a longer campaign */
const SCALE = Number(process.env.LORAKIT_FUZZ_SCALE ?? 1);
export const RUNS = Object.fromEntries(Object.entries({ bytes: 10_000, headers: 10_000, file: 500, ggufBytes: 10_000, ggufFields: 5000, ggufFile: 500 }).map(([k, n]) => [k, Math.round(n * SCALE)])) as Record<'bytes' | 'headers' | 'file' | 'ggufBytes' | 'ggufFields' | 'ggufFile', number>;

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

// ---------------------------------------------------------------------------------------------
// GGUF

/** A valid GGUF file: metadata of several value types (strings, arrays), an F32 and a Q8_0 tensor. */
function validGguf(): Uint8Array {
  const f32 = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).buffer);
  const q8 = new Uint8Array(34); // one Q8_0 block: an f16 scale and 32 int8 values
  q8[1] = 0x3c; // scale 1.0
  for (let i = 0; i < 32; i++) q8[2 + i] = i;
  return serializeGguf({
    metadata: [
      ['general.architecture', kv.str('llama')],
      ['general.name', kv.str('fuzz')],
      ['llama.block_count', kv.u32(2)],
      ['llama.rope.freq_base', kv.f32(10000)],
      ['tokenizer.ggml.tokens', kv.strs(['<s>', '</s>', 'a', 'b'])],
      ['tokenizer.ggml.token_type', kv.i32s([3, 3, 1, 1])],
      ['some.flag', kv.bool(true)],
    ],
    tensors: [
      { name: 'a.weight', shape: [2, 4], type: GGML_TYPE.F32, byteLength: f32.length, data: () => f32 },
      { name: 'b.weight', shape: [1, 32], type: GGML_TYPE.Q8_0, byteLength: q8.length, data: () => q8 },
    ],
  });
}

const gguf = validGguf();
// the header ends where the data region begins
const ggufHeaderEnd = parseGguf(gguf, 'valid.gguf').dataOffset;

/** The outcome must be a header whose tensors lie inside the file, or a FormatError naming the input. */
function checkGguf(parse: () => { header: GgufHeader; size: number; read?: (name: string) => Float32Array }, label: string): 'ok' | 'error' {
  let out: { header: GgufHeader; size: number; read?: (name: string) => Float32Array };
  try {
    out = parse();
  } catch (e) {
    if (!(e instanceof FormatError)) throw new Error(`not a FormatError: ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.ok(e.message.includes(label), e.message);
    return 'error';
  }
  for (const t of out.header.tensors) {
    assert.ok(t.offset >= out.header.dataOffset && t.offset + t.byteLength <= out.size, `tensor ${t.name} lies outside the file`);
    if (out.read) assert.equal(out.read(t.name).length, t.shape.reduce((a, b) => a * b, 1), t.name);
  }
  return 'ok';
}

const ggufBytes = fc
  .record({
    edits: fc.array(fc.record({ pos: fc.oneof(fc.integer({ min: 0, max: ggufHeaderEnd - 1 }), fc.integer({ min: 0, max: gguf.length - 1 })), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
    cut: fc.option(fc.integer({ min: 0, max: gguf.length }), { nil: null }),
  })
  .map(({ edits, cut }) => {
    const b = gguf.slice(0, cut ?? gguf.length);
    for (const { pos, byte } of edits) if (pos < b.length) b[pos] = byte;
    return b;
  });

/** 4- or 8-byte fields overwritten with extreme values: counts, lengths, dims, types, offsets. */
const EXTREMES = [0n, 1n, 2n, 3n, 4n, 12n, 13n, 31n, 32n, 255n, 65535n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];
const ggufFields = fc
  .array(fc.record({ pos: fc.integer({ min: 0, max: ggufHeaderEnd - 8 }), width: fc.constantFrom(4, 8), value: fc.oneof(fc.constantFrom(...EXTREMES), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })) }), { minLength: 1, maxLength: 3 })
  .map((edits) => {
    const b = gguf.slice();
    const dv = new DataView(b.buffer);
    for (const { pos, width, value } of edits) {
      if (width === 8) dv.setBigUint64(pos, value, true);
      else dv.setUint32(pos, Number(value & 0xffffffffn), true);
    }
    return b;
  });

describe('fuzz: GGUF header parser', () => {
  it(`${RUNS.ggufBytes} byte-mutated GGUF files: a header inside the file or a FormatError`, () => {
    const seen = { ok: 0, error: 0 };
    fc.assert(
      fc.property(ggufBytes, (b) => {
        seen[checkGguf(() => ({ header: parseGguf(b, 'fuzz.gguf'), size: b.length }), 'fuzz.gguf')]++;
      }),
      { seed: SEED + 3, numRuns: RUNS.ggufBytes },
    );
    assert.equal(seen.ok + seen.error, RUNS.ggufBytes);
    assert.ok(seen.error > 0 && seen.ok > 0, JSON.stringify(seen));
  });

  it(`${RUNS.ggufFields} GGUF files with counts, lengths, dims and offsets set to extreme values: no crash, no huge allocation`, () => {
    const seen = { ok: 0, error: 0 };
    fc.assert(
      fc.property(ggufFields, (b) => {
        seen[checkGguf(() => ({ header: parseGguf(b, 'fields.gguf'), size: b.length }), 'fields.gguf')]++;
      }),
      { seed: SEED + 4, numRuns: RUNS.ggufFields },
    );
    assert.ok(seen.error > RUNS.ggufFields / 2, JSON.stringify(seen));
  });

  it(`${RUNS.ggufFile} mutated GGUF files opened from disk (GgufFile), every tensor dequantized`, () => {
    const dir = tmpDir('lorakit-fuzz-gguf-');
    const file = join(dir, 'm.gguf');
    const fds = (): number => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0);
    const open = fds();
    fc.assert(
      fc.property(fc.oneof(ggufBytes, ggufFields), (b) => {
        writeFileSync(file, b);
        checkGguf(() => {
          const f = GgufFile.open(file);
          try {
            // every tensor read and dequantized while the file is open
            const values = new Map(f.tensors.map((t) => [t.name, f.values(t.name)] as const));
            return { header: f.header, size: b.length, read: (name: string) => values.get(name)! };
          } finally {
            f.close();
          }
        }, file);
      }),
      { seed: SEED + 5, numRuns: RUNS.ggufFile },
    );
    assert.equal(fds(), open, 'file descriptors left open');
  });
});
