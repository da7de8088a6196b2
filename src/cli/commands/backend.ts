// lorakit backend: which compute backend is in use and why (the fallback chain native,
// wasm, ref; LORAKIT_BACKEND forces one: docs/ARCHITECTURE.md §Platforms and entry points).
import { Command } from 'commander';
import { getBackend } from '../../backend/index.js';
import { backendReason, loadWasmBackend, nativeBackend, nativeError, wasmError, wasmVariant } from '../../backend/native/select.js';

export function backendCommand(): Command {
  return new Command('backend').description('show which compute backend lorakit uses and why').action(async () => {
    const b = getBackend();
    const n = nativeBackend();
    console.log(`backend: ${b.name} (${backendReason(b)})`);
    console.log(`threads: ${b.threads}`);
    if (n) console.log(`native addon: ${n.avx2fma ? `${n.isa} kernels` : 'portable kernels (no AVX2/FMA)'}`);
    else console.log(`native addon: unavailable (${nativeError()})`);
    if (n) console.log(`prompt products (generate, chat, serve) with half or quantized weights: ${n.amx ? 'AMX-BF16, activations rounded to bf16 (LORAKIT_AMX=0: f32)' : 'f32 GEMM (no AMX-BF16 here, or LORAKIT_AMX=0)'}`);
    if (n) console.log(`prompt attention (generate, chat, serve): ${n.amxAttention ? 'AMX-BF16, q, k, v and the softmax weights rounded to bf16 (LORAKIT_AMX_ATTENTION=0: f32)' : 'f32 kernel (no AMX-BF16 here, LORAKIT_AMX=0 or LORAKIT_AMX_ATTENTION=0)'}`);
    const w = await loadWasmBackend();
    if (w) console.log(`wasm module: ${wasmVariant()}, ${w.threads} threads`);
    else console.log(`wasm module: unavailable (${wasmError()})`);
  });
}
