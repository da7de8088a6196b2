// The data layer's Node-only public API (files on disk); index.ts holds the platform-neutral rest.
export { checkDataset, loadDataset, loadTrainValid, type TrainValidOptions } from './dataset.node.js';
export { hasTokenizer, pairTokenizerFromFolder, readTextClassification } from './classify.node.js';
export { decodeImage, listImageDataset, loadImageExamples, readImage, readImageProcessorConfig, type ImageItem } from './images.node.js';
