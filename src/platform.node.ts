// What lorakit's Node entry points (the package's `lorakit` entry, the CLI, the test runner)
// install before they run: the backend defaults (native addon, LORAKIT_BACKEND) and warnings
// through process.emitWarning. The core reads neither `process` nor `node:` modules; see
// docs/ARCHITECTURE.md §Platforms and entry points.
import { installNodeBackend, prepareNodeBackend } from './backend/native/select.js';
import { setWarningHandler } from './io/errors.js';

/** Installs the Node platform; the promise settles when the backend can be chosen (the wasm
 *  module loaded, where the fallback chain or LORAKIT_BACKEND needs it). */
export async function installNodePlatform(): Promise<void> {
  installNodeBackend();
  setWarningHandler((message, code) => process.emitWarning(message, { code }));
  await prepareNodeBackend();
}
