// The classic LoRA walkthrough (../shared/seed: "LoRA 代码示例（完整训练）") with lorakit:
// a frozen 512×512 Linear, a rank-4 adapter with alpha = 32, AdamW (lr 1e-4) on A and B
// only, ten epochs of a 32×512 batch, loss = sum(y).
//
// Two corrections against the tutorial (see src/lora/lora-linear.ts and src/lora/init.ts): the adapter output is scaled by
// alpha / r (not alpha), and only B starts at zero (A is Kaiming-uniform, a = √5), so the
// adapter starts as a no-op and still learns. One change: the batch is drawn once (seeded)
// and reused. The tutorial draws a fresh zero-mean batch every epoch, and then the expected
// gradient of sum(y) is zero, so its printed loss only shows noise.
//
// Run: npx tsc -p . && node dist/examples/classic-lora.js
import { pathToFileURL } from 'node:url';
import { LoraLinear } from '../src/lora/index.js';
import { Linear } from '../src/nn/linear.js';
import { Rng } from '../src/tensor/rng.js';
import { kaimingUniform } from '../src/lora/init.js';
import { AdamW } from '../src/train/adamw.js';

export interface ClassicResult {
  losses: number[];
  /** the frozen weight before and after training */
  weightBefore: Float32Array;
  weightAfter: Float32Array;
  trainable: string[];
}

export function runClassicLora(opts: { d?: number; r?: number; alpha?: number; epochs?: number; batch?: number; lr?: number; seed?: number; log?: (line: string) => void } = {}): ClassicResult {
  const d = opts.d ?? 512;
  const r = opts.r ?? 4;
  const alpha = opts.alpha ?? 32;
  const epochs = opts.epochs ?? 10;
  const batch = opts.batch ?? 32;
  const rng = new Rng(opts.seed ?? 0);

  // self.W = nn.Linear(d, d, bias=False); self.W.requires_grad_(False)
  const W = new Linear(d, d, { bias: false });
  kaimingUniform(W.weight.data, d, rng); // nn.Linear's default init
  W.weight.requiresGrad = false;

  // A: Kaiming-uniform, B: zeros, scaling alpha / r
  const model = new LoraLinear(W);
  model.addAdapter('default', { r, alpha, rng });
  model.setActive(['default']);
  model.computeInputGrad = false; // x is data: no gradient needed

  const trainable = model.trainableParameters();
  const optimizer = new AdamW(
    trainable.map(([, p]) => p),
    { lr: opts.lr ?? 1e-4 },
  );

  const x = new Float32Array(batch * d);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const ones = new Float32Array(batch * d).fill(1); // d(sum y)/dy
  const weightBefore = W.weight.data.slice();
  const losses: number[] = [];
  for (let epoch = 0; epoch < epochs; epoch++) {
    const y = model.forward(x, batch);
    let loss = 0;
    for (let i = 0; i < y.length; i++) loss += y[i]!;
    model.backward(ones);
    optimizer.step();
    optimizer.zeroGrad();
    losses.push(loss);
    opts.log?.(`Epoch ${epoch}: Loss=${loss}`);
  }
  return { losses, weightBefore, weightAfter: W.weight.data.slice(), trainable: trainable.map(([n]) => n) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const res = runClassicLora({ log: (l) => console.log(l) });
  console.log(`trained ${res.trainable.join(', ')}; the frozen weight is ${res.weightAfter.every((v, i) => v === res.weightBefore[i]) ? 'unchanged' : 'CHANGED'}`);
}
