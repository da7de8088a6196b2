import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/tensor/half.js';
import { ShapeError, Tensor } from '../../src/tensor/tensor.js';

describe('half-precision conversions', () => {
  it('round-trip every f16 bit pattern (NaNs stay NaN)', () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = f16ToF32(h);
      if (Number.isNaN(f)) {
        assert.ok(Number.isNaN(f16ToF32(f32ToF16(f))), `NaN 0x${h.toString(16)}`);
        continue;
      }
      assert.equal(f32ToF16(f), h, `f16 0x${h.toString(16)} -> ${f}`);
    }
  });
  it('round-trip every bf16 bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = bf16ToF32(h);
      if (Number.isNaN(f)) continue;
      assert.equal(f32ToBf16(f), h, `bf16 0x${h.toString(16)}`);
    }
  });
  it('round to nearest, ties to even', () => {
    // 1 + 2^-11 is halfway between f16 1 and 1 + 2^-10: ties to the even mantissa (1.0)
    assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00);
    // 1 + 3·2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: ties to even (1 + 2^-9)
    assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(f32ToF16(65520), 0x7c00); // rounds up past the largest finite f16: inf
    assert.equal(f32ToF16(2 ** -25), 0); // half the smallest subnormal: ties to 0
    assert.equal(f32ToF16(2 ** -24), 1); // smallest subnormal
    assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // bf16 tie to even
    assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(f16ToF32(0xc000), -2);
    assert.equal(bf16ToF32(0x4049), 3.140625);
  });
});

describe('Tensor', () => {
  it('keeps half storage and widens on demand', () => {
    const t = Tensor.fromValues([1, -2.5, 0.1], [3], 'bf16');
    assert.ok(t.data instanceof Uint16Array);
    assert.deepEqual([...t.toF32Array()], [1, -2.5, bf16ToF32(f32ToBf16(0.1))]);
    assert.throws(() => t.f32, /tensor is bf16; call toF32\(\) to widen it/);
    assert.equal(t.to('f16').dtype, 'f16');
  });
  it('reshapes views and names both shapes when they disagree', () => {
    const t = Tensor.zeros([2, 3]);
    assert.equal(t.reshape([3, 2]).data, t.data);
    assert.throws(() => t.reshape([4, 2]), (e: Error) => e instanceof ShapeError && /cannot view \[2, 3\] \(6 elements\) as \[4, 2\] \(8 elements\)/.test(e.message));
    assert.throws(() => t.expectShape([3, 2], 'q_proj.weight'), /q_proj.weight: expected shape \[3, 2\], got \[2, 3\]/);
  });
  it('rejects bad shapes and storage', () => {
    assert.throws(() => Tensor.zeros([2, -1]), /shape \[2, -1\] has an invalid dimension -1/);
    assert.throws(() => new Tensor('f32', [2, 2], new Float32Array(3)), /shape \[2, 2\] needs 4 elements, storage has 3/);
    assert.throws(() => new Tensor('bf16', [1], new Float32Array(1)), /dtype bf16 needs Uint16Array storage, got Float32Array/);
    assert.throws(() => Tensor.fromValues([1, 2], [3]), /needs 3 values, got 2/);
  });
});
