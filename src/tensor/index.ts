export { Tensor, ShapeError, numel, formatShape, DTYPES, floatDTypeOf } from './tensor.js';
export type { DType, Storage, TensorDType, TensorStorage } from './tensor.js';
export { QUANT_DTYPES, QUANT_BLOCK, isQuantDType, quantBytes, quantValues, dequantizeBlocks, dequantizeAll, quantNonFinite } from './quant.js';
export type { QuantDType } from './quant.js';
export { f32ToBf16, bf16ToF32, f32ToF16, f16ToF32 } from './half.js';
export { IGNORE_INDEX } from './labels.js';
export { Rng, mixSeed } from './rng.js';
export type { RngState } from './rng.js';
