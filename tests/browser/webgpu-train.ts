// Training on the WebGPU backend, in the page (placeholder until the training tests land).
import type { WebGpuBackend } from '../../src/backend/webgpu/index.js';

export function registerWebGpuTraining(_be: WebGpuBackend): void {}
