// Node's backend choice (docs/ARCHITECTURE.md §Platforms and entry points): the native addon
// when it loads, else the reference backend with a single clear warning. LORAKIT_BACKEND=ref
// forces the reference backend. lorakit's Node entry installs these defaults.
import { refBackend, setBackend as setCoreBackend, setBackendDefaults, type Backend } from '../index.js';
import { createNativeBackend, type NativeBackend } from './backend.js';
import { loadAddon } from './index.js';

let native: NativeBackend | null | undefined;
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

/** Chooses the backend: 'native', 'ref', or a Backend object. */
export function setBackend(b: 'native' | 'ref' | Backend): Backend {
  if (b !== 'native') return setCoreBackend(b);
  const n = nativeBackend();
  if (!n) throw new Error(`the native backend is not available: ${nativeError()}`);
  return setCoreBackend(n);
}

/** The backend Node uses until one is set: `backend` ('ref' forces the reference backend), else native with a fallback. */
export function chooseNodeBackend(backend: string | undefined): Backend {
  if (backend === 'ref') return refBackend;
  const n = nativeBackend();
  if (n) return n;
  if (!warned) {
    warned = true;
    process.emitWarning(`lorakit is running on the slow TypeScript backend: ${nativeError()}`, { code: 'LORAKIT_NO_NATIVE' });
  }
  return refBackend;
}

/** Installs Node's defaults: the backend named by LORAKIT_BACKEND or the native one, and cache-line alignment from the addon. */
export function installNodeBackend(): void {
  setBackendDefaults({
    choose: () => chooseNodeBackend(process.env.LORAKIT_BACKEND),
    byteAlignment: (a) => {
      const addon = loadAddon().addon;
      return addon && typeof addon['byteAlignment'] === 'function' ? (addon['byteAlignment'](a) as number) : 0;
    },
  });
}
