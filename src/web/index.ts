// The browser layer's public API (lorakit/browser, src/browser.ts): the training worker and
// its client, models from URLs or picked files, the `lorakit train` recipe, adapter zips and
// the backend choice. See docs/ARCHITECTURE.md §Browser.
export { LorakitWorker, WorkerError, type GenerateOptions as WorkerGenerateOptions, type TrainCallbacks as WorkerTrainCallbacks } from './client.js';
export { loadModelFiles, type LoadedModel, type ModelSource } from './model-files.js';
export { prepareLoraRun, adapterBytes, parseTargetList, LORA_SETTING_DEFAULTS, type LoraRun, type LoraSettings } from './recipe.js';
export { zipAdapter, unzipFiles, adapterSource } from './zip.js';
export { installBrowserBackend, registerBrowserBackend, webGpuLoader, type BackendLoader, type InstallOptions } from './backend.js';
export type { BackendChoice, BackendInfo, EvalEvent, GenerateSummary, ModelInfo, ProgressEvent, TrainSummary } from './protocol.js';
