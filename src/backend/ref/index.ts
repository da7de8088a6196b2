// The reference backend: plain TypeScript, simple and obviously right. It is the oracle
// every other backend is tested against, and it runs anywhere (Node.js or a browser). Its
// memory is the host's: a handle is the typed array itself (docs/ARCHITECTURE.md §Backend memory).
import { QUANT_DTYPES } from '../../tensor/quant.js';
import { hostMemory } from '../host-memory.js';
import type { Backend } from '../types.js';
import { gemm } from './gemm.js';
import * as k from './kernels.js';
import * as rows from './rows.js';
import { convKernels } from './conv.js';

export const refBackend: Backend = {
  name: 'ref',
  threads: 1,
  memory: hostMemory,
  quantTypes: QUANT_DTYPES,
  gemm,
  ...k,
  ...rows,
  ...convKernels,
};
