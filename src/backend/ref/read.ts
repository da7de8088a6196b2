// Element readers that widen half storage to f32 values.
import { bf16ToF32, f16ToF32 } from '../../tensor/half.js';
import { dequantizeAll, isQuantDType } from '../../tensor/quant.js';
import type { TensorDType, TensorStorage } from '../../tensor/tensor.js';

export type Reader = (i: number) => number;

export function reader(data: TensorStorage, dtype: TensorDType = 'f32'): Reader {
  if (data instanceof Uint8Array) {
    const v = widen(data, dtype);
    return (i) => v[i]!;
  }
  if (data instanceof Float32Array) {
    if (dtype !== 'f32') throw new TypeError(`reader: Float32Array storage given with dtype ${dtype}`);
    return (i) => data[i]!;
  }
  if (dtype === 'bf16') return (i) => bf16ToF32(data[i]!);
  if (dtype === 'f16') return (i) => f16ToF32(data[i]!);
  throw new TypeError('reader: Uint16Array storage needs dtype f16 or bf16');
}

/**
 * The values as one Float32Array (the storage itself when it is f32; a widened copy of half
 * storage): loops then read plain array elements instead of calling a reader per element.
 * The values are the same as reader()'s, so results do not change.
 */
export function widen(data: TensorStorage, dtype: TensorDType = 'f32'): Float32Array {
  if (data instanceof Uint8Array) {
    if (!isQuantDType(dtype)) throw new TypeError(`widen: Uint8Array storage needs a quantized dtype (q8_0, q4_0, q4_k, q6_k), got ${dtype}`);
    return dequantizeAll(dtype, data); // the blocks' values exactly (tensor/quant.ts)
  }
  if (data instanceof Float32Array) {
    if (dtype !== 'f32') throw new TypeError(`widen: Float32Array storage given with dtype ${dtype}`);
    return data;
  }
  if (dtype !== 'bf16' && dtype !== 'f16') throw new TypeError('widen: Uint16Array storage needs dtype f16 or bf16');
  const f = dtype === 'bf16' ? bf16ToF32 : f16ToF32;
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = f(data[i]!);
  return out;
}
