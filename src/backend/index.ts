// Backend selection: the native addon when it loads, else the reference backend with a
// single clear warning. LORAKIT_BACKEND=ref forces the reference backend.
import { createNativeBackend, type NativeBackend } from './native/backend.js';
import { loadAddon } from './native/index.js';
import { refBackend } from './ref/index.js';
import type { Backend } from './types.js';

export type { Backend, GemmArgs, AttentionArgs, AdamWArgs, GeluApprox, HalfDType, PatchArgs } from './types.js';
export { refBackend };

let native: NativeBackend | null | undefined;
let current: Backend | null = null;
let warned = false;

/** The native backend, or null (with the reason from nativeError()) when the addon is unavailable. */
export function nativeBackend(): NativeBackend | null {
  if (native === undefined) {
    const { addon } = loadAddon();
    native = addon ? createNativeBackend(addon, refBackend) : null;
  }
  return native;
}

export function nativeError(): string | null {
  return loadAddon().error;
}

export function getBackend(): Backend {
  if (current) return current;
  if (process.env.LORAKIT_BACKEND === 'ref') {
    current = refBackend;
    return current;
  }
  const n = nativeBackend();
  if (n) {
    current = n;
  } else {
    current = refBackend;
    if (!warned) {
      warned = true;
      process.emitWarning(`lorakit is running on the slow TypeScript backend: ${nativeError()}`, { code: 'LORAKIT_NO_NATIVE' });
    }
  }
  return current;
}

/** Chooses the backend: 'native', 'ref', or a Backend object. */
export function setBackend(b: 'native' | 'ref' | Backend): Backend {
  if (b === 'ref') current = refBackend;
  else if (b === 'native') {
    const n = nativeBackend();
    if (!n) throw new Error(`the native backend is not available: ${nativeError()}`);
    current = n;
  } else current = b;
  return current;
}
