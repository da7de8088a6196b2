// The GEMM shapes the benches time: the products of a training step of a 768-wide model with
// 512 tokens (GPT-2-small-shaped), and LoRA's thin products around them. bench/gemm.ts times all
// of them against OpenBLAS, bench/wasm.ts the f32 training products on wasm, bench/ab.ts all of
// them on two checkouts. Plain data, no imports: bench/ab.ts loads its addons itself.

export interface GemmShape {
  label: string;
  M: number;
  K: number;
  N: number;
  transA?: boolean;
  transB?: boolean;
  bDtype?: 'f32' | 'bf16';
}

/** the f32 products of a training step (forward, and the two backward products of a layer) */
export const TRAINING_SHAPES: GemmShape[] = [
  { label: '512×768 · 768×768', M: 512, K: 768, N: 768 },
  { label: '512×768 · 768×3072', M: 512, K: 768, N: 3072 },
  { label: '512×3072 · 3072×768', M: 512, K: 3072, N: 768 },
  { label: '2048×768 · 768×768', M: 2048, K: 768, N: 768 },
  { label: '(512×768)ᵀ · 512×768', M: 768, K: 512, N: 768, transA: true },
];

/** TRAINING_SHAPES, a transposed B, the same with a bf16 B, and LoRA's products */
export const GEMM_SHAPES: GemmShape[] = [
  ...TRAINING_SHAPES,
  { label: '512×768 · (768×768)ᵀ', M: 512, K: 768, N: 768, transB: true },
  ...TRAINING_SHAPES.map((s) => ({ ...s, label: `${s.label}, B bf16`, bDtype: 'bf16' as const })),
  { label: 'LoRA x·Aᵀ 512×768 · 768×8', M: 512, K: 768, N: 8 },
  { label: 'LoRA h·Bᵀ 512×8 · 8×768', M: 512, K: 8, N: 768 },
  // the LoRA backward products with a transposed A: dyᵀ·h (dB-like) and (dy·B)ᵀ·x (dA-like)
  { label: 'LoRA (512×768)ᵀ · 512×8', M: 768, K: 512, N: 8, transA: true },
  { label: 'LoRA (512×8)ᵀ · 512×768', M: 8, K: 512, N: 768, transA: true },
];
