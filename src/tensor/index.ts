export { Tensor, ShapeError, numel, formatShape, DTYPES } from './tensor.js';
export type { DType, Storage } from './tensor.js';
export { f32ToBf16, bf16ToF32, f32ToF16, f16ToF32 } from './half.js';
export { IGNORE_INDEX } from './labels.js';
export { Rng, mixSeed } from './rng.js';
export type { RngState } from './rng.js';
