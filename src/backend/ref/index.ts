// The reference backend: plain TypeScript, simple and obviously right. It is the oracle
// every other backend is tested against, and it runs anywhere (Node.js or a browser).
import type { Backend } from '../types.js';
import { gemm } from './gemm.js';
import * as k from './kernels.js';
import { convKernels } from './conv.js';

export const refBackend: Backend = {
  name: 'ref',
  threads: 1,
  gemm,
  ...k,
  ...convKernels,
};
