// The io layer: safetensors, sharded checkpoints, model folders, tokenizers, atomic writes.
export { FormatError } from './errors.js';
export { writeFileAtomic, writeFileAtomicSync, writeDirAtomic, fsyncDirSync } from './atomic.js';
export type { FileData, FileDataSync, FolderFiles, AtomicWriteOptions } from './atomic.js';
export {
  SafetensorsFile,
  readSafetensors,
  deserializeSafetensors,
  serializeSafetensors,
  writeSafetensors,
  writeSafetensorsSync,
  planSafetensors,
  tensorBytes,
  tensorDTypeOf,
  safetensorsDTypeOf,
  dtypeByteSize,
  isSafetensorsDType,
  SAFETENSORS_DTYPES,
  MAX_HEADER_BYTES,
} from './safetensors.js';
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
export { ShardedSafetensors, readShardIndex, writeShardedSafetensors, planShards, SINGLE_WEIGHTS_FILE, SHARD_INDEX_FILE } from './sharded.js';
export type { ShardIndex, WriteShardedOptions, WrittenWeights } from './sharded.js';
export { loadModelFolder, openWeights, findWeights } from './model-folder.js';
export type { ModelFolder, LoadModelFolderOptions, WeightFiles, SpecialTokens } from './model-folder.js';
export { Tokenizer, StreamDecoder, ChatTemplateError, readTokenizerFiles, specialTokenContent, parseChatTemplates } from './tokenizer.js';
export type { TokenizerFiles, ChatMessage, EncodeOptions, DecodeOptions, ChatTemplateOptions } from './tokenizer.js';
export type { JsonObject } from './json.js';
