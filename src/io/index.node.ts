// The io layer's Node-only public API (files on disk); index.ts holds the platform-neutral rest.
export { writeFileAtomic, writeFileAtomicSync, writeDirAtomic, fsyncDirSync, recoverAtomicWrites } from './atomic.node.js';
export type { FolderFiles, AtomicWriteOptions } from './atomic.node.js';
export { SafetensorsFile, readSafetensors, writeSafetensors, writeSafetensorsSync } from './safetensors.node.js';
export { ShardedSafetensors, readShardIndex, writeShardedSafetensors, planShards, SINGLE_WEIGHTS_FILE, SHARD_INDEX_FILE } from './sharded.node.js';
export type { ShardIndex, WriteShardedOptions, WrittenWeights } from './sharded.node.js';
export { loadModelFolder, openWeights, findWeights } from './model-folder.node.js';
export type { ModelFolder, LoadModelFolderOptions, WeightFiles, SpecialTokens } from './model-folder.node.js';
export { readTokenizerFiles, loadTokenizer, ggufTokenizerFilesOf } from './tokenizer.node.js';
export { checkOutputFolder, realPathOf, OutputFolderError } from './paths.node.js';
export type { InputPath } from './paths.node.js';
export { GgufFile, writeGguf, isGgufPath } from './gguf.node.js';
