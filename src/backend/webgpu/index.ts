// The WebGPU backend (issue 22; docs/ARCHITECTURE.md §Backend memory, §WebGPU): every kernel
// of backend/types.ts in WGSL, buffers on the device, one readback per training step.
// Platform-neutral: it needs only `navigator.gpu` (a browser) or a GPU object given to it.
import type { Backend } from '../types.js';
import { attentionKernels } from './attention.js';
import { GpuContext, gpuMemory } from './device.js';
import { elementwiseKernels } from './elementwise.js';
import { gemmKernel } from './gemm.js';

export { GpuAcc, GpuContext, GpuF32, GpuU16, type KernelTimes } from './device.js';

export interface WebGpuBackend extends Backend {
  readonly context: GpuContext;
  /** the adapter's description (vendor, architecture), and whether it is a fallback (software) adapter */
  readonly adapter: string;
  readonly fallback: boolean;
}

/** The backend over a device the caller has (its limits should be the adapter's: see requestWebGpuBackend). */
export function createWebGpuBackend(device: GPUDevice, adapter = '', fallback = false): WebGpuBackend {
  const context = new GpuContext(device);
  return {
    name: 'webgpu',
    threads: 1,
    memory: gpuMemory(context),
    context,
    adapter,
    fallback,
    gemm: gemmKernel(context, fallback),
    ...elementwiseKernels(context, fallback),
    ...attentionKernels(context, fallback),
  };
}

export interface WebGpuOptions {
  /** take a fallback (software) adapter too, such as SwiftShader (default false) */
  allowFallback?: boolean;
  /** the GPU object (default navigator.gpu) */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
}

/** An adapter's description (vendor, architecture, description) and whether it is a fallback (software) adapter. */
export function describeAdapter(adapter: GPUAdapter): { description: string; fallback: boolean } {
  // adapter.info (newer typings than TypeScript's DOM lib); isFallbackAdapter moved into it
  const info = ((adapter as unknown as { info?: Record<string, unknown> }).info ?? {}) as { vendor?: string; architecture?: string; description?: string; isFallbackAdapter?: boolean };
  const fallback = info.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false;
  return { description: [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unknown adapter', fallback };
}

/** Requests an adapter and a device with its limits (and timestamp-query where offered); throws saying why when there is none. */
export async function requestWebGpuBackend(opts: WebGpuOptions = {}): Promise<WebGpuBackend> {
  const gpu = opts.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) throw new Error('WebGPU is not available here (no navigator.gpu)');
  const adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : {});
  if (!adapter) throw new Error('WebGPU: no adapter (navigator.gpu.requestAdapter gave none)');
  const { description: desc, fallback } = describeAdapter(adapter);
  if (fallback && !opts.allowFallback) throw new Error(`WebGPU: only a fallback adapter (${desc}), slower than the CPU backends: allow it (allowFallbackAdapter) or choose webgpu by name`);
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    },
  });
  return createWebGpuBackend(device, desc, fallback);
}
