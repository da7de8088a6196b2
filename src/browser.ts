// lorakit for the browser (`lorakit/browser`): the platform-neutral core plus the browser
// layer: a Web Worker that loads a model from URLs or picked files, trains LoRA adapters
// (progress, pause, cancel), streams generation and hands out PEFT adapters, zipped or as the
// two files. The bundle (dist/browser/lorakit.js, scripts/build-browser.mjs) ships worker.js
// next to it. See docs/ARCHITECTURE.md §Platforms and entry points and §Browser.
export * from './core.js';
export * from './web/index.js';
