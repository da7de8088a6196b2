// Tensors between the host and a device backend's memory (docs/ARCHITECTURE.md §Backend
// memory). On a host-visible backend (ref, native, wasm) both directions are the tensor itself.
// On a device backend (WebGPU) a tensor's storage is either a device handle (a typed-array
// subclass with no host elements) or a host array (a model loaded from files, a tensor read
// back): `hostTensor` reads the first kind back (what a file writer needs), `deviceTensor`
// uploads the second (what a frozen weight needs to stay resident instead of being uploaded by
// every kernel call that reads it).
import { f32ToBf16, f32ToF16 } from '../tensor/half.js';
import { Tensor, type DType } from '../tensor/tensor.js';
import { getBackend } from './index.js';

/** Whether storage is a device handle: it has elements, none of them on the host. */
export function isDeviceStorage(a: { readonly length: number; readonly byteLength: number }): boolean {
  return a.length > 0 && a.byteLength === 0;
}

/**
 * The tensor with host storage: itself when it has it, else a copy read back. Half storage is
 * widened on the device, read, and narrowed on the host, which gives back the same bits.
 */
export async function hostTensor(t: Tensor): Promise<Tensor> {
  const d = t.data;
  if (!isDeviceStorage(d)) return t;
  const be = getBackend();
  if (d instanceof Float32Array) return new Tensor('f32', t.shape, await be.memory.read(d));
  if (!(d instanceof Uint16Array)) throw new TypeError(`hostTensor: a ${t.dtype} tensor on the device cannot be read back`);
  const dtype = t.dtype as Exclude<DType, 'f32'>;
  const wide = be.memory.alloc(d.length);
  try {
    be.widen(wide, d, dtype);
    const f = await be.memory.read(wide);
    const narrow = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
    const out = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) out[i] = narrow(f[i]!);
    return new Tensor(dtype, t.shape, out);
  } finally {
    be.memory.free(wide);
  }
}

/** hostTensor over a map, keys and order kept (a state dict about to be serialized). */
export async function hostTensors<K>(m: ReadonlyMap<K, Tensor>): Promise<Map<K, Tensor>> {
  const out = new Map<K, Tensor>();
  for (const [k, t] of m) out.set(k, await hostTensor(t));
  return out;
}

/**
 * The tensor with storage in the current backend's memory: itself on a host-visible backend or
 * when it is there already; else an upload (f32 and half; quantized blocks stay on the host,
 * where the kernels that read them upload them).
 */
export function deviceTensor(t: Tensor): Tensor {
  const d = t.data;
  const mem = getBackend().memory;
  if (mem.hostVisible || isDeviceStorage(d) || d.length === 0) return t;
  if (d instanceof Float32Array) {
    const h = mem.alloc(d.length);
    mem.write(h, d);
    return new Tensor('f32', t.shape, h);
  }
  if (!(d instanceof Uint16Array)) return t;
  const h = mem.allocHalf(d.length, t.dtype as Exclude<DType, 'f32'>);
  h.set(d); // an upload (§Backend memory: `set` from host values)
  return new Tensor(t.dtype, t.shape, h);
}


/**
 * Moves parameters' values into the current backend's memory (deviceTensor), so a device
 * backend reads frozen weights in place instead of uploading them for every kernel call;
 * parameters sharing one tensor (tied weights) share one upload. Returns the bytes uploaded.
 */
export function makeResident(params: Iterable<{ value: Tensor }>): number {
  const moved = new Map<Tensor, Tensor>();
  let bytes = 0;
  for (const p of params) {
    let t = moved.get(p.value);
    if (!t) {
      t = deviceTensor(p.value);
      if (t !== p.value) bytes += t.size * (t.dtype === 'f32' ? 4 : 2);
      moved.set(p.value, t);
    }
    p.value = t;
  }
  return bytes;
}
