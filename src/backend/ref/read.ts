// Element readers that widen half storage to f32 values.
import { bf16ToF32, f16ToF32 } from '../../tensor/half.js';
import type { DType, Storage } from '../../tensor/tensor.js';

export type Reader = (i: number) => number;

export function reader(data: Storage, dtype: DType = 'f32'): Reader {
  if (data instanceof Float32Array) {
    if (dtype !== 'f32') throw new TypeError(`reader: Float32Array storage given with dtype ${dtype}`);
    return (i) => data[i]!;
  }
  if (dtype === 'bf16') return (i) => bf16ToF32(data[i]!);
  if (dtype === 'f16') return (i) => f16ToF32(data[i]!);
  throw new TypeError('reader: Uint16Array storage needs dtype f16 or bf16');
}
