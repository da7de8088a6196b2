// LoRA: configs, the LoraLinear layer, injection into models, named adapters, weighted
// combination, merging, PEFT / mlx-lm adapter files and parameter counting.
export { loraConfig, parseLoraConfig, loraScaling, adapterConfigJson, LoraConfigError, LORA_CONFIG_DEFAULTS } from './config.js';
export type { LoraConfig, LoraConfigInput, LoraBias, InitLoraWeights, ParsedLoraConfig } from './config.js';
export { LoraLinear, LoraAdapter, LoraContext, BASE_ADAPTER } from './lora-linear.js';
export type { AdapterOptions } from './lora-linear.js';
export { matchModule, planTargets, rankAndAlpha, patternKey, layerIndexOf, DEFAULT_TARGET_MODULES } from './match.js';
export type { ModuleInfo, MatchResult, TargetPlan } from './match.js';
export { PeftModel, getPeftModel } from './peft-model.js';
export type { PeftModelOptions } from './peft-model.js';
export { ModulesToSave } from './modules-to-save.js';
export { adapterStateDict, adapterFiles, loadAdapterFiles, pythonJson, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, MLX_ADAPTER_WEIGHTS_FILE, PEFT_PREFIX } from './files.js';
export type { SaveAdapterOptions, LoadAdapterOptions, AdapterSource } from './files.js';
export { addWeightedAdapter } from './weighted.js';
export type { CombinationType, WeightedAdapterOptions } from './weighted.js';
export { countLoraParameters, modulesFromConfig } from './count.js';
export type { LoraParameterCount } from './count.js';
export { kaimingUniform, kaimingUniformBound } from './init.js';
