// The data pipeline's public API: JSONL datasets (text, prompt/completion, chat), tokenization
// with prompt masking, truncation, validation splits, batching, packing, and checkDataset.
export { DataError, formatIssue, type DataIssue } from './errors.js';
export { ROLES, layoutOf, parseJsonl, type ChatMessage, type ChatRecord, type CompletionRecord, type DataFormat, type DataRecord, type Role, type TextRecord } from './records.js';
export { RecordError, tokenizeRecord, type DataTokenizer, type TokenizeOptions, type TokenizedRecord } from './tokenize.js';
export { DEFAULT_MAX_LENGTH, checkJsonl, datasetFromJsonl, lengthStats, splitDataset, targetCount, type Dataset, type DatasetOptions, type DatasetReport, type Example, type LengthStats } from './dataset.js';
export { BatchIterator, IGNORE_INDEX, attentionBias, collate, packRows, padIdFor, type Batch, type BatchIteratorState, type BatchOptions, type BatchOrder, type CollateOptions } from './batch.js';
export { ClassifyBatches, collateClassify, encodeTextExamples, labelSet, pairTokenizer, parseTextClassification, type ClassifyBatch, type ClassifyBatchState, type ClassifyExample, type EncodeTextOptions, type PairTokenizer, type TextDataset, type TextExample } from './classify.js';
export { ImageDecodeError, VIT_PROCESSOR_DEFAULTS, parseImageProcessorConfig, preprocessImage, resizeBilinear, type ImageProcessorConfig, type RgbImage } from './images.js';
