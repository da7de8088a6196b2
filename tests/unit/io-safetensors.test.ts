import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor } from '../../src/tensor/index.js';
import { FormatError, deserializeSafetensors, serializeSafetensors } from '../../src/io/index.js';
import { SafetensorsFile, readSafetensors, writeSafetensors, writeSafetensorsSync } from '../../src/io/index.node.js';
import type { RawTensor } from '../../src/io/index.js';
import { listDir, rawSafetensors, tmpDir } from '../helpers/io-tmp.js';

function allHalfBits(): Uint16Array {
  const a = new Uint16Array(65536);
  for (let i = 0; i < a.length; i++) a[i] = i;
  return a;
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function expectFormatError(fn: () => unknown, ...parts: (string | RegExp)[]): FormatError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof FormatError, `expected a FormatError, got ${String(caught)}`);
  for (const p of parts) {
    if (typeof p === 'string') assert.ok(caught.message.includes(p), `message ${JSON.stringify(caught.message)} should include ${JSON.stringify(p)}`);
    else assert.match(caught.message, p);
  }
  return caught;
}

test('safetensors round trip: every dtype bit-exact, with metadata', async () => {
  const dir = tmpDir();
  const f32 = new Float32Array([0, -0, 1.5, -2.25, Infinity, -Infinity, NaN, 1e-45, 3.4028234663852886e38, Math.PI]);
  const f32bits = new Uint32Array(f32.buffer);
  f32bits[6] = 0x7fc12345; // a NaN with a payload must survive
  const tensors = new Map<string, Tensor | RawTensor>([
    ['w.f32', new Tensor('f32', [2, 5], f32)],
    ['w.f16', new Tensor('f16', [256, 256], allHalfBits())],
    ['w.bf16', new Tensor('bf16', [65536], allHalfBits())],
    ['empty', new Tensor('f32', [0, 4])],
    ['scalar', new Tensor('f32', [], new Float32Array([7]))],
    ['ids.i64', { dtype: 'I64', shape: [3], data: new BigInt64Array([-(2n ** 63n), 0n, 2n ** 63n - 1n]) }],
    ['ids.i32', { dtype: 'I32', shape: [2], data: new Int32Array([-2147483648, 2147483647]) }],
    ['i16', { dtype: 'I16', shape: [2], data: new Int16Array([-32768, 32767]) }],
    ['i8', { dtype: 'I8', shape: [3], data: new Int8Array([-128, 0, 127]) }],
    ['u8', { dtype: 'U8', shape: [3], data: new Uint8Array([0, 128, 255]) }],
    ['mask', { dtype: 'BOOL', shape: [2, 2], data: new Uint8Array([1, 0, 0, 1]) }],
    ['f64', { dtype: 'F64', shape: [2], data: new Float64Array([Math.E, -1e300]) }],
    ['u16', { dtype: 'U16', shape: [1], data: new Uint16Array([65535]) }],
    ['u32', { dtype: 'U32', shape: [1], data: new Uint32Array([4294967295]) }],
    ['u64', { dtype: 'U64', shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) }],
  ]);
  const metadata = { format: 'pt', note: 'ünïcödé ✓' };
  const file = path.join(dir, 'all.safetensors');
  await writeSafetensors(file, tensors, { metadata });
  assert.deepEqual(listDir(dir), ['all.safetensors'], 'no temp file left');

  const loaded = readSafetensors(file);
  assert.deepEqual(loaded.metadata, metadata);
  assert.deepEqual([...loaded.tensors.keys()].sort(), ['empty', 'scalar', 'w.bf16', 'w.f16', 'w.f32']);
  for (const [name, want] of tensors) {
    const got = loaded.tensors.get(name) ?? loaded.others.get(name);
    assert.ok(got, name);
    assert.deepEqual([...got.shape], [...want.shape], `${name} shape`);
    assert.equal(got.dtype, want.dtype, `${name} dtype`);
    assert.equal(got.data.constructor, want.data.constructor, `${name} array type`);
    assert.ok(sameBytes(got.data, want.data), `${name} bytes`);
  }
  // In-memory serialization gives the same bytes as the file.
  const bytes = serializeSafetensors(tensors, { metadata });
  assert.ok(Buffer.from(bytes).equals(fs.readFileSync(file)));
  const again = deserializeSafetensors(bytes, 'mem');
  assert.ok(sameBytes(again.tensors.get('w.bf16')!.data, allHalfBits()));
  assert.equal(again.others.get('ids.i64')!.data[2], 2n ** 63n - 1n);
});

test('safetensors writer: byte-for-byte the layout of the spec', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'small.safetensors');
  writeSafetensorsSync(
    file,
    { b: Tensor.fromValues([1, 2], [2]), a: new Tensor('f16', [1], new Uint16Array([0x3c00])) },
    { metadata: { format: 'pt' } },
  );
  const got = fs.readFileSync(file);
  // Header keys: __metadata__, then names sorted. Data: larger elements first (F32 "b", then F16 "a").
  const json = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const padded = json + ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  assert.equal((8 + padded.length) % 8, 0);
  const expected = Buffer.alloc(8 + padded.length + 10);
  expected.writeBigUInt64LE(BigInt(padded.length), 0);
  expected.write(padded, 8, 'utf8');
  let off = 8 + padded.length;
  off = expected.writeFloatLE(1, off);
  off = expected.writeFloatLE(2, off);
  expected.writeUInt16LE(0x3c00, off);
  assert.deepEqual([...got], [...expected]);
  assert.equal(got.readBigUInt64LE(0), BigInt(padded.length));
});

test('safetensors reader: a hand-made file with unaligned offsets and no padding', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'hand.safetensors');
  // "h" (BF16, 3 values = 6 bytes) first, so "w" (F32) starts at the unaligned data offset 6.
  const data = Buffer.alloc(6 + 8 + 8);
  data.writeUInt16LE(0x3f80, 0); // bf16 1.0
  data.writeUInt16LE(0xc000, 2); // bf16 -2.0
  data.writeUInt16LE(0x7f80, 4); // bf16 +inf
  data.writeFloatLE(0.5, 6);
  data.writeFloatLE(-3, 10);
  data.writeBigInt64LE(-5n, 14);
  const header = {
    w: { dtype: 'F32', shape: [2], data_offsets: [6, 14] },
    ids: { dtype: 'I64', shape: [1, 1], data_offsets: [14, 22] },
    h: { dtype: 'BF16', shape: [3], data_offsets: [0, 6] },
  };
  fs.writeFileSync(file, rawSafetensors(header, data));
  const f = SafetensorsFile.open(file);
  try {
    assert.deepEqual(f.names(), ['h', 'ids', 'w']);
    assert.deepEqual(f.fileOrder(), ['h', 'w', 'ids']);
    assert.deepEqual(f.metadata, {});
    const w = f.tensor('w');
    assert.equal(w.dtype, 'f32');
    assert.equal(w.data.byteOffset, 0, 'each tensor has its own aligned buffer');
    assert.deepEqual([...w.f32], [0.5, -3]);
    assert.deepEqual([...f.tensor('h').toF32Array()], [1, -2, Infinity]);
    const ids = f.raw('ids');
    assert.deepEqual([...ids.shape], [1, 1]);
    assert.equal(ids.data[0], -5n);
    const info = f.info('w');
    assert.equal(info.offset, 8 + f.headerLength + 6);
    assert.equal(info.byteLength, 8);
    expectFormatError(() => f.tensor('ids'), file, 'tensor "ids" is I64', 'raw()');
    expectFormatError(() => f.tensor('nope'), file, 'no tensor named "nope"');
    assert.deepEqual([...f.tensors()].map(([n]) => n), ['h', 'w']);
  } finally {
    f.close();
  }
});

test('safetensors reader: every bad input names the file and what was expected', () => {
  const dir = tmpDir();
  const file = (name: string, bytes: Uint8Array | Buffer): string => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, bytes);
    return p;
  };
  const good = serializeSafetensors({ x: Tensor.fromValues([1, 2, 3, 4], [2, 2]) });

  let p = file('short.safetensors', new Uint8Array(5));
  expectFormatError(() => SafetensorsFile.open(p), p, 'file is 5 bytes, shorter than the 8-byte header length');

  p = file('past-end.safetensors', rawSafetensors({}, [], { headerLength: 1000n }));
  expectFormatError(() => SafetensorsFile.open(p), p, 'header length 1000 runs past the end of the file (file is 10 bytes');

  p = file('huge-length.safetensors', rawSafetensors({}, [], { headerLength: 2n ** 63n }));
  expectFormatError(() => SafetensorsFile.open(p), p, 'runs past the end of the file');

  p = file('json.safetensors', rawSafetensors(null, [], { headerText: '{"x": {"dtype": "F32",' }));
  expectFormatError(() => SafetensorsFile.open(p), p, 'header is not valid JSON');

  p = file('not-object.safetensors', rawSafetensors(null, [], { headerText: '[1, 2]  ' }));
  expectFormatError(() => SafetensorsFile.open(p), p, "header must be a JSON object starting with '{'");

  p = file('dtype.safetensors', rawSafetensors({ x: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 2] } }, [0, 0]));
  expectFormatError(() => SafetensorsFile.open(p), p, 'tensor "x": unknown dtype "Q4_K" (expected one of F64, F32, F16, BF16');

  p = file('size.safetensors', rawSafetensors({ x: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, new Uint8Array(20)));
  expectFormatError(() => SafetensorsFile.open(p), p, 'tensor "x": shape [2, 3] of F32 needs 24 bytes, but data_offsets [0, 20] span 20 bytes');

  // Truncated: the good file with its last 4 bytes cut off.
  p = file('truncated.safetensors', good.subarray(0, good.length - 4));
  expectFormatError(() => SafetensorsFile.open(p), p, 'tensor "x": data_offsets [0, 16] run past the end of the data region (12 bytes after the header)', `expected at least ${good.length}`, 'truncated');

  p = file('order.safetensors', rawSafetensors({ x: { dtype: 'U8', shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)));
  expectFormatError(() => SafetensorsFile.open(p), p, 'tensor "x": data_offsets [4,0] are out of order');

  p = file(
    'overlap.safetensors',
    rawSafetensors(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      },
      new Uint8Array(12),
    ),
  );
  expectFormatError(() => SafetensorsFile.open(p), p, 'tensor "b" data_offsets [4, 12] overlap tensor "a" [0, 8]');

  p = file(
    'hole.safetensors',
    rawSafetensors(
      {
        a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
      },
      new Uint8Array(12),
    ),
  );
  expectFormatError(() => SafetensorsFile.open(p), p, 'data bytes [4, 8) belong to no tensor', 'after tensor "a", before tensor "b"');

  p = file('trailing.safetensors', rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(10)));
  expectFormatError(() => SafetensorsFile.open(p), p, 'the data region is 10 bytes but the tensors cover only 4: 6 trailing bytes');

  p = file('meta.safetensors', rawSafetensors({ __metadata__: { format: 'pt', step: 5 } }));
  expectFormatError(() => SafetensorsFile.open(p), p, '__metadata__.step must be a string, got number 5');

  p = file('shape.safetensors', rawSafetensors({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }));
  expectFormatError(() => SafetensorsFile.open(p), p, 'tensor "x": shape must be an array of non-negative integers, got [-1]');

  // Several problems at once: all reported in one error.
  p = file(
    'many.safetensors',
    rawSafetensors(
      {
        a: { dtype: 'F99', shape: [1], data_offsets: [0, 4] },
        b: { dtype: 'F32', shape: [3], data_offsets: [4, 8] },
        c: { dtype: 'F16', shape: [1] },
      },
      new Uint8Array(8),
    ),
  );
  const e = expectFormatError(() => SafetensorsFile.open(p), p, '3 problems', 'tensor "a": unknown dtype "F99"', 'tensor "b": shape [3] of F32 needs 12 bytes', 'tensor "c": data_offsets must be [begin, end]');
  assert.equal(e.problems.length, 3);
  assert.equal(e.file, p);

  // In memory, the label takes the file's place.
  expectFormatError(() => deserializeSafetensors(good.subarray(0, 20), 'upload.safetensors'), 'upload.safetensors', 'runs past the end of the file');
});

test('safetensors writer: rejects bad input, naming the tensor', () => {
  assert.throws(
    () => serializeSafetensors({ x: { dtype: 'I32', shape: [3], data: new Int32Array(2) } }),
    (err: Error) => err instanceof FormatError && err.message.includes('tensor "x": shape [3] needs 3 elements, data has 2'),
  );
  assert.throws(
    () => serializeSafetensors({ x: { dtype: 'I64', shape: [1], data: new Int32Array(1) } }),
    (err: Error) => err.message.includes('tensor "x": I64 data must be a BigInt64Array, got Int32Array'),
  );
  assert.throws(() => serializeSafetensors({ __metadata__: Tensor.zeros([1]) }), /reserved/);
});

test('safetensors: a large tensor is read lazily into its own array and a closed file refuses reads', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'big.safetensors');
  const n = 3_000_000;
  const big = new Float32Array(n);
  for (let i = 0; i < n; i++) big[i] = i * 0.5;
  writeSafetensorsSync(file, { big: Tensor.fromF32(big, [1000, 3000]), small: Tensor.fromValues([9], [1]) });
  const f = SafetensorsFile.open(file);
  assert.deepEqual([...f.tensor('small').f32], [9]);
  const t = f.tensor('big');
  assert.equal(t.data.buffer.byteLength, n * 4, 'no larger buffer behind the tensor');
  assert.ok(sameBytes(t.data, big));
  f.close();
  assert.throws(() => f.tensor('small'), /file is closed/);
});
