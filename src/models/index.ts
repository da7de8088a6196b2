// Model families, loading and saving.
export type { CausalLM, CausalLMInfo, ForwardOptions, AttentionMask, LossResult, LossAndBackwardOptions } from './causal-lm.js';
export {
  causalLMLoss,
  causalLMLossBackward,
  lossAndBackward,
  shiftLabels,
  positionsFromMask,
  additiveMask,
  normalizeMask,
} from './causal-lm.js';
export { ConfigError, ConfigReader } from './config.js';
export { DecoderLM, DecoderBlock, TiedLMHead } from './decoder.js';
export { LlamaForCausalLM, parseLlamaConfig, sanitizeLlamaKey, LLAMA_LIKE_TYPES } from './llama.js';
export type { LlamaConfig, LlamaLikeType } from './llama.js';
export { GPT2LMHeadModel, parseGPT2Config, sanitizeGPT2Key } from './gpt2.js';
export type { GPT2Config } from './gpt2.js';
export { ropeInvFreq, llama3InvFreq, parseRope, ROPE_TYPES } from './rope.js';
export type { RopeSpec, RopeType } from './rope.js';
export { MODEL_FAMILIES, getModelFamily, supportedModelTypes, sanitizeStateDict, UnsupportedModelError, defaultTargetModules } from './registry.js';
export type { ModelFamily, ModuleShape } from './family.js';
export { linearShape, otherShape, withContainers } from './family.js';
export { llamaFamily, mistralFamily, qwen2Family, llamaModuleShapes } from './llama.js';
export { gpt2Family, gpt2ModuleShapes } from './gpt2.js';
export { Gemma3ForCausalLM, gemma3Family, gemma3ModuleShapes, parseGemma3Config, type Gemma3Config } from './gemma3.js';
export { Phi3ForCausalLM, phi3Family, phi3ModuleShapes, parsePhi3Config, type Phi3Config } from './phi3.js';
export { qwen3Family, parseQwen3Config } from './qwen3.js';
export { smollm3Family, parseSmolLM3Config } from './smollm3.js';
export { createModel, modelFromWeights, modelFolderContents, WeightsError } from './load.js';
export type { LoadModelOptions, CreateModelOptions, SaveModelOptions, WeightsWhere } from './load.js';
export { EncoderClassifier, EncoderLayer, labelsFromConfig, type SequenceClassifier, type EncoderInputs, type TextInputs, type ImageInputs, type ClassifierInfo, type EncoderFamily } from './encoder.js';
export { BertForSequenceClassification, parseBertConfig, type BertConfig } from './bert.js';
export { parseRobertaConfig } from './roberta.js';
export { ViTForImageClassification, PatchConv, parseViTConfig, type ViTConfig } from './vit.js';
export { createClassifier, classifierFromWeights, type LoadClassifierOptions, type CreateClassifierOptions } from './encoder-load.js';
export { ENCODER_FAMILIES, getEncoderFamily } from './registry.js';
export { ggufConfig, ggufTensorSource, modelToGguf, adapterToGguf, tokenizerMetadata, ggufName, hfName, permuteQK, ggufArch, GGUF_EXPORT_TYPES } from './gguf.js';
export type { GgufExportType, ModelGgufInput, LoraPair, GgufReader } from './gguf.js';
