import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  FormatError,
  GGML_TYPE,
  GGUF_VALUE,
  blockSpec,
  dequantize,
  ggufKV as kv,
  parseGguf,
  quantize,
  serializeGguf,
  type GgmlTypeName,
  type GgufOut,
} from '../../src/io/index.js';
import { GgufFile, writeGguf } from '../../src/io/index.node.js';
import { f16ToF32, f32ToF16 } from '../../src/tensor/half.js';
import { Rng } from '../../src/tensor/rng.js';
import { tmpDir } from '../helpers/io-tmp.js';

function randomValues(n: number, seed: number, scale = 1): Float32Array {
  return new Rng(seed).fillNormalFast(new Float32Array(n), 0, scale);
}

function tensorOut(name: string, shape: number[], type: GgmlTypeName, values: Float32Array) {
  const bytes = quantize(blockSpec(type), values);
  return { name, shape, type: GGML_TYPE[type], byteLength: bytes.length, data: () => bytes };
}

function sampleDoc(): GgufOut {
  return {
    metadata: [
      ['general.architecture', kv.str('llama')],
      ['llama.block_count', kv.u32(4)],
      ['llama.rope.freq_base', kv.f32(10000)],
      ['tokenizer.ggml.add_bos_token', kv.bool(false)],
      ['tokenizer.ggml.tokens', kv.strs(['a', 'b', 'ü', ''])],
      ['tokenizer.ggml.token_type', kv.i32s([1, 1, 3, -4])],
      ['big', { type: GGUF_VALUE.U64, value: 2n ** 60n }],
      ['neg', { type: GGUF_VALUE.I64, value: -5 }],
      ['f64', { type: GGUF_VALUE.F64, value: 0.1 }],
      ['i8s', { type: GGUF_VALUE.ARRAY, itemType: GGUF_VALUE.I8, value: [-1, 2] }],
    ],
    tensors: [
      tensorOut('a', [3, 64], 'F32', randomValues(192, 1)),
      tensorOut('b', [64], 'F16', randomValues(64, 2)),
      tensorOut('c', [2, 64], 'BF16', randomValues(128, 3)),
      tensorOut('d', [2, 64], 'Q8_0', randomValues(128, 4)),
      tensorOut('e', [2, 64], 'Q4_0', randomValues(128, 5)),
      tensorOut('f', [2, 256], 'Q4_K', randomValues(512, 6)),
      tensorOut('g', [2, 256], 'Q6_K', randomValues(512, 7)),
    ],
  };
}

test('GGUF: metadata and tensors written are read back, offsets aligned, from bytes and from a file', async () => {
  const doc = sampleDoc();
  const bytes = serializeGguf(doc);
  const h = parseGguf(bytes);
  assert.equal(h.version, 3);
  assert.equal(h.alignment, 32);
  assert.deepEqual([...h.metadata.keys()], doc.metadata.map(([k]) => k));
  for (const [k, v] of doc.metadata) assert.deepEqual(h.metadata.get(k), v, k);
  assert.deepEqual(h.tensors.map((t) => [t.name, t.shape, t.ne]), doc.tensors.map((t) => [t.name, t.shape, [...t.shape].reverse()]));
  for (const t of h.tensors) assert.equal((t.offset - h.dataOffset) % 32, 0);
  for (const [i, t] of h.tensors.entries()) {
    assert.deepEqual(bytes.subarray(t.offset, t.offset + t.byteLength), doc.tensors[i]!.data());
  }
  const file = path.join(tmpDir(), 'x.gguf');
  await writeGguf(file, doc);
  assert.deepEqual(new Uint8Array(fs.readFileSync(file)), bytes);
  const g = GgufFile.open(file);
  try {
    assert.equal(g.metadata.string('general.architecture'), 'llama');
    assert.equal(g.metadata.number('llama.rope.freq_base'), 10000);
    assert.deepEqual(g.metadata.strings('tokenizer.ggml.tokens'), ['a', 'b', 'ü', '']);
    assert.deepEqual(g.values('a'), randomValues(192, 1));
    assert.throws(() => g.metadata.number('general.architecture'), /metadata key "general.architecture" must be a number, got STRING llama/);
    assert.throws(() => g.metadata.string('llama.context_length'), /metadata key "llama.context_length" is missing \(expected a string\)/);
  } finally {
    g.close();
  }
});

test('GGUF blocks: Q8_0 and Q4_0 follow ggml reference quantizers on a known block', () => {
  const x = new Float32Array(32).map((_, i) => i - 10); // absmax 21
  const q8 = quantize(blockSpec('Q8_0'), x);
  assert.equal(q8.length, 34);
  const d8 = f16ToF32(q8[0]! | (q8[1]! << 8));
  assert.equal(d8, f16ToF32(f32ToF16(21 / 127)));
  assert.equal((q8[2 + 31]! << 24) >> 24, 127);
  assert.equal((q8[2]! << 24) >> 24, Math.round(-10 / (21 / 127)));
  const back8 = dequantize(blockSpec('Q8_0'), q8, 32);
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(back8[i]! - x[i]!) <= d8 / 2 + 1e-3, `q8 ${i}`);

  // Q4_0: d = max/-8 where max is the value of largest magnitude (21 at i = 31) → d = -2.625
  const q4 = quantize(blockSpec('Q4_0'), x);
  const d4 = f16ToF32(q4[0]! | (q4[1]! << 8));
  assert.equal(d4, -2.625);
  // x[31] = 21 = d·(q − 8) → q = 0; x[10] = 0 → q = 8
  assert.equal(q4[2 + 15]! >> 4, 0);
  assert.equal(q4[2 + 10]! & 15, 8);
  const back4 = dequantize(blockSpec('Q4_0'), q4, 32);
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(back4[i]! - x[i]!) <= Math.abs(d4) / 2 + 1e-3, `q4 ${i}`);
});

test('GGUF blocks: Q4_K and Q6_K dequantize hand-built blocks by the format (6-bit packed scales, split quants)', () => {
  // Q4_K: d = 1, dmin = 0.5; sub-block 1 scale 2 min 3 (plain bytes), sub-block 5 scale 37 min 42 (packed in high bits)
  const b = new Uint8Array(144);
  b.set([f32ToF16(1) & 255, f32ToF16(1) >> 8, f32ToF16(0.5) & 255, f32ToF16(0.5) >> 8], 0);
  const sc = 4;
  b[sc + 1] = 2; // scale of sub-block 1
  b[sc + 5] = 3; // min of sub-block 1
  // sub-block 5: scale 37 = 0b100101 → low 4 bits in scales[9] low nibble, high 2 bits in scales[1] bits 6..7
  //              min 42 = 0b101010 → low 4 bits in scales[9] high nibble, high 2 bits in scales[5] bits 6..7
  b[sc + 9] = (37 & 15) | ((42 & 15) << 4);
  b[sc + 1]! |= (37 >> 4) << 6;
  b[sc + 5]! |= (42 >> 4) << 6;
  // sub-block 1 is the high nibbles of qs[0..31]; sub-block 5 the high nibbles of qs[64..95]
  b[16 + 7] = 9 << 4;
  b[16 + 64 + 3] = 11 << 4;
  const y = dequantize(blockSpec('Q4_K'), b, 256);
  assert.equal(y[32 + 7], 1 * 2 * 9 - 0.5 * 3);
  assert.equal(y[32 + 0], -1.5);
  assert.equal(y[5 * 32 + 3], 37 * 11 - 0.5 * 42);
  assert.equal(y[0], 0);

  // Q6_K: d = 0.25 at bytes 208..209; scale of sub-block 9 (values 144..159) = -3
  const c = new Uint8Array(210);
  c[208] = f32ToF16(0.25) & 255;
  c[209] = f32ToF16(0.25) >> 8;
  c[192 + 9] = -3 & 255;
  // value 150 = second half (128..255), l = 22, first quarter: low 4 bits in ql[64 + 22] low nibble, high 2 in qh[32 + 22] bits 0..1
  c[64 + 22] = 5;
  c[128 + 32 + 22] = 2;
  const z = dequantize(blockSpec('Q6_K'), c, 256);
  assert.equal(z[150], 0.25 * -3 * (5 + 2 * 16 - 32));
  assert.equal(z[149], 0.25 * -3 * -32);
});

test('GGUF blocks: quantize then dequantize stays within each format\'s step', () => {
  const x = randomValues(1024, 11, 0.05);
  const amax = Math.max(...x.map(Math.abs));
  const err = (t: GgmlTypeName) => {
    const y = dequantize(blockSpec(t), quantize(blockSpec(t), x), x.length);
    return Math.max(...y.map((v, i) => Math.abs(v - x[i]!)));
  };
  assert.equal(err('F32'), 0);
  assert.ok(err('F16') < amax * 1e-3);
  assert.ok(err('BF16') < amax * 4e-3);
  assert.ok(err('Q8_0') < amax / 127, `Q8_0 ${err('Q8_0')}`);
  assert.ok(err('Q6_K') < amax / 31, `Q6_K ${err('Q6_K')}`);
  assert.ok(err('Q4_0') < amax / 8, `Q4_0 ${err('Q4_0')}`);
  assert.ok(err('Q4_K') < amax / 7, `Q4_K ${err('Q4_K')}`);
  assert.throws(() => quantize(blockSpec('Q4_K'), new Float32Array(100)), /100 values is not a whole number of 256-value blocks/);
});

/** Writes a u64 little-endian at byte o. */
function setU64(b: Uint8Array, o: number, v: bigint): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setBigUint64(o, v, true);
  return c;
}

test('GGUF header: every malformed input is a FormatError naming what and where, never a crash', () => {
  const good = serializeGguf(sampleDoc());
  // every truncation (short of the last tensor's end; the padding after it may go)
  const end = Math.max(...parseGguf(good).tensors.map((t) => t.offset + t.byteLength));
  for (let n = 0; n < end; n += n < 600 ? 1 : 97) {
    assert.throws(() => parseGguf(good.subarray(0, n), 'cut.gguf'), (e: unknown) => e instanceof FormatError, `cut at ${n}`);
  }
  // random byte flips: parse or a FormatError
  const rng = new Rng(5);
  for (let i = 0; i < 400; i++) {
    const bad = good.slice();
    for (let k = 0; k < 3; k++) bad[rng.nextInt(600)] = rng.nextInt(256);
    try {
      parseGguf(bad, 'flip.gguf');
    } catch (e) {
      assert.ok(e instanceof FormatError, `flip ${i}: ${(e as Error).stack}`);
    }
  }
  const msg = (b: Uint8Array) => {
    try {
      parseGguf(b, 'm.gguf');
    } catch (e) {
      assert.ok(e instanceof FormatError);
      return (e as Error).message;
    }
    return 'parsed';
  };
  assert.match(msg(new TextEncoder().encode('PK\x03\x04rest of a zip')), /GGUF file m.gguf: magic at byte 0: not a GGUF file: it starts with "PK\\x03\\x04"/);
  const v1 = good.slice();
  v1[4] = 1;
  assert.match(msg(v1), /version at byte 4: GGUF version 1 is not supported/);
  assert.match(msg(setU64(good, 8, 1n << 40n)), /tensor_count at byte 8: 1099511627776 tensors cannot fit/);
  assert.match(msg(setU64(good, 16, 1n << 45n)), /kv_count at byte 16: 35184372088832 metadata entries cannot fit/);
  assert.match(msg(setU64(good, 24, 1n << 50n)), /metadata key #0 at byte 24: a string of 1125899906842624 bytes runs past the end/);
  // first key "general.architecture" (20 bytes): its type at 24 + 8 + 20
  const badType = good.slice();
  badType[52] = 13;
  assert.match(msg(badType), /metadata key "general.architecture" at byte 56: unknown value type 13/);
  // a huge array count for tokenizer.ggml.tokens
  const tokAt = findString(good, 'tokenizer.ggml.tokens') + 'tokenizer.ggml.tokens'.length + 8;
  assert.match(msg(setU64(good, tokAt, 1n << 40n)), /metadata key "tokenizer.ggml.tokens" at byte \d+: an array of 1099511627776 STRING items runs past the end/);
  // tensor "f" (Q4_K) with a row of 100 values; with 9 dimensions; with an unknown type
  const fAt = findString(good, '\x01\x00\x00\x00\x00\x00\x00\x00f') + 9;
  assert.match(msg(setU64(good, fAt + 4, 100n)), /tensor "f" at byte \d+: rows of 100 values are not whole Q4_K blocks of 256/);
  const nine = good.slice();
  nine[fAt] = 9;
  assert.match(msg(nine), /tensor "f" at byte \d+: has 9 dimensions; GGUF tensors have 1 to 4/);
  const q5 = good.slice();
  q5[fAt + 4 + 16] = 13;
  assert.match(msg(q5), /tensor "f" at byte \d+: has GGML type Q5_K, which lorakit does not read \(it reads F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K\)/);
  assert.match(msg(setU64(good, fAt + 4 + 16 + 4, 1n << 20n)), /tensor "f" at byte \d+: its 288 bytes of data at file offset \d+ run past the end of the file/);
  assert.match(msg(setU64(good, fAt + 4 + 16 + 4, 0n)), /tensor "f" at byte \d+: its data at file offset \d+ overlaps tensor "a"|tensor "a" .*overlaps tensor "f"/);
  assert.match(msg(setU64(good, fAt + 4 + 16 + 4, 7n)), /tensor "f" at byte \d+: data offset 7 is not a multiple of the alignment 32/);
});

function findString(b: Uint8Array, s: string): number {
  const needle = new TextEncoder().encode(s);
  outer: for (let i = 0; i + needle.length <= b.length; i++) {
    for (let j = 0; j < needle.length; j++) if (b[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error(`not found: ${s}`);
}
