// The lora layer's Node-only public API (files on disk); index.ts holds the platform-neutral rest.
export { saveAdapter, loadAdapter, loadPeftModel, readAdapterFolder } from './files.node.js';
