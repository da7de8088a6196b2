// lorakit's Node entry (`lorakit`): the whole core (src/core.ts) plus what needs Node: files on
// disk, the native backend, the classification task and the HTTP server. Importing it installs
// Node's defaults (the native addon when it loads, LORAKIT_BACKEND, warnings through
// process.emitWarning). See docs/ARCHITECTURE.md §Platforms and entry points.
import { installNodePlatform } from './platform.node.js';

await installNodePlatform();

export * from './core.js';
export { installNodePlatform } from './platform.node.js';
export { nativeBackend, nativeError, setBackend } from './backend/native/select.js';
export * from './io/index.node.js';
export * from './models/index.node.js';
export * from './lora/index.node.js';
export * from './data/index.node.js';
export * from './train/index.node.js';
// the loop with Node's run folder, progress bar and peak RSS (the core's train takes them as TrainOptions.host)
export { train } from './train/index.node.js';
export * from './tasks/classify.js';
export * from './serve/index.js';
