// The models layer's Node-only public API (files on disk); index.ts holds the platform-neutral rest.
export { loadModel, loadGgufModel, saveModel, writeModelFolder } from './load.node.js';
export { loadClassifier, saveClassifier } from './encoder-load.node.js';
