// The io layer: safetensors, tokenizers, JSON, errors and warnings (index.node.ts: files on disk).
export { FormatError, ProblemsError, formatProblems, setWarningHandler } from './errors.js';
export type { WarningHandler } from './errors.js';
export type { FileData, FileDataSync } from './file-data.js';
export { deserializeSafetensors, serializeSafetensors, planSafetensors, tensorBytes, tensorDTypeOf, safetensorsDTypeOf, dtypeByteSize, isSafetensorsDType, SAFETENSORS_DTYPES, MAX_HEADER_BYTES } from './safetensors.js';
export type {
  SafetensorsDType,
  RawArray,
  RawTensor,
  TensorInfo,
  TensorSource,
  TensorLike,
  TensorMap,
  LoadedSafetensors,
  WriteSafetensorsOptions,
} from './safetensors.js';
export { Tokenizer, StreamDecoder, ChatTemplateError, specialTokenContent, parseChatTemplates } from './tokenizer.js';
export type { TokenizerFiles, ChatMessage, EncodeOptions, DecodeOptions, ChatTemplateOptions } from './tokenizer.js';
export { MemoryWeights, parseShardIndexText } from './memory-weights.js';
export { parseJsonObject } from './json.js';
export type { JsonObject } from './json.js';
export { parseGgufHeader, parseGguf, serializeGguf, ggufChunks, GgufMetadata, GgufNeedMore, GGUF_VALUE, GGUF_MAGIC, kv as ggufKV } from './gguf.js';
export type { GgufHeader, GgufKV, GgufTensorInfo, GgufOut, GgufTensorOut, GgufScalar, GgufValueType } from './gguf.js';
export { ggufTokenizerFiles } from './gguf-tokenizer.js';
export { GGML_TYPE, blockSpec, blockSpecOf, ggmlTypeName, dequantize, dequantizeInto, quantize, typeBytes, READABLE_TYPES } from './gguf-blocks.js';
export type { BlockSpec, GgmlTypeName } from './gguf-blocks.js';
