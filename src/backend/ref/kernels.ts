// Reference kernels other than GEMM. (Being written: every function below is replaced by
// its plain TypeScript implementation.)
import type { Backend } from '../types.js';

function todo(name: string): never {
  throw new Error(`ref kernel ${name} is not written yet`);
}

export const add: Backend['add'] = () => todo('add');
export const axpy: Backend['axpy'] = () => todo('axpy');
export const scale: Backend['scale'] = () => todo('scale');
export const sumSquares: Backend['sumSquares'] = () => todo('sumSquares');
export const widen: Backend['widen'] = () => todo('widen');
export const narrow: Backend['narrow'] = () => todo('narrow');
export const biasAdd: Backend['biasAdd'] = () => todo('biasAdd');
export const biasBackward: Backend['biasBackward'] = () => todo('biasBackward');
export const rmsnormForward: Backend['rmsnormForward'] = () => todo('rmsnormForward');
export const rmsnormBackward: Backend['rmsnormBackward'] = () => todo('rmsnormBackward');
export const layernormForward: Backend['layernormForward'] = () => todo('layernormForward');
export const layernormBackward: Backend['layernormBackward'] = () => todo('layernormBackward');
export const softmax: Backend['softmax'] = () => todo('softmax');
export const geluForward: Backend['geluForward'] = () => todo('geluForward');
export const geluBackward: Backend['geluBackward'] = () => todo('geluBackward');
export const siluForward: Backend['siluForward'] = () => todo('siluForward');
export const siluBackward: Backend['siluBackward'] = () => todo('siluBackward');
export const swigluForward: Backend['swigluForward'] = () => todo('swigluForward');
export const swigluBackward: Backend['swigluBackward'] = () => todo('swigluBackward');
export const embeddingForward: Backend['embeddingForward'] = () => todo('embeddingForward');
export const embeddingBackward: Backend['embeddingBackward'] = () => todo('embeddingBackward');
export const rope: Backend['rope'] = () => todo('rope');
export const attentionForward: Backend['attentionForward'] = () => todo('attentionForward');
export const attentionBackward: Backend['attentionBackward'] = () => todo('attentionBackward');
export const crossEntropyForward: Backend['crossEntropyForward'] = () => todo('crossEntropyForward');
export const crossEntropyBackward: Backend['crossEntropyBackward'] = () => todo('crossEntropyBackward');
export const adamw: Backend['adamw'] = () => todo('adamw');
