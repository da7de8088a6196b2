// Generation: KV-cache driven decoding, sampling, streaming.
export { generate, generateSteps, streamGenerate, generateText } from './generate.js';
export type { GenerateOptions, GenerationResult, TokenEvent, FinishReason } from './generate.js';
export { sampleToken, applyRepetitionPenalty, filterTopKTopP, argmax, softmax, checkSamplingOptions } from './sampling.js';
export type { SamplingOptions } from './sampling.js';
