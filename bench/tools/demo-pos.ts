// The demo's part-of-speech adapter alone (issue 21): the same data, LoRA, schedule, baseline and
// scoring as runDemo()'s part (a) in src/demo/demo.ts, with the format, steps, learning rate and
// seed as switches, so that one candidate costs a few minutes instead of a whole demo. Prints one
// JSON line: accuracy against the most-frequent-tag baseline under each decoding, the baseline's
// errors fixed and its right tags broken, "to" and unseen words, mean training loss by stretch.
//
//   LORAKIT_THREADS=1 node dist/bench/tools/demo-pos.js fmt=next seed=1 decode=both [steps=800 lr=3e-3 r=16]
//
// fmt: next (the demo's default: the word's and the next word's dictionary tags, "?" unseen),
// hint (the word's own tag, NOUN unseen), plain. decode: dictionary, tags or both.
import { installNodePlatform } from '../../src/platform.node.js';
import { getBackend } from '../../src/backend/index.js';
import { BatchIterator } from '../../src/data/batch.js';
import { getPeftModel } from '../../src/lora/peft-model.js';
import { loadModel } from '../../src/models/load.node.js';
import { createOptimizer } from '../../src/train/optimizer.js';
import { train } from '../../src/train/trainer.node.js';
import { coarseTag, readBrownCorpus, splitBrown, tagAccuracy, trainMostFrequentTag, type CoarseTag } from '../../src/corpus/brown.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';
import { BUNDLED_MODEL_DIR, posExamples, posSentences, scorePos, splitHeldOut, spread, versusBaseline, wordTags, type PosView } from '../../src/demo/demo.js';

await installNodePlatform();
const a = Object.fromEntries(process.argv.slice(2).map((s) => s.split('=') as [string, string]));
const modelDir = a['model'] ?? BUNDLED_MODEL_DIR;
const steps = Number(a['steps'] ?? 800);
const lr = Number(a['lr'] ?? 3e-3);
const r = Number(a['r'] ?? 16);
const seed = Number(a['seed'] ?? 1);
const fmt = a['fmt'] ?? 'next';
const tok = loadTokenizer(modelDir);
const base = loadModel(modelDir);
const docs = readBrownCorpus();
const halves = splitHeldOut(docs);
const pre = splitBrown(docs).train.flatMap((d) => d.sentences);
const test = spread(posSentences(halves.test), Number(a['ntest'] ?? 160));
const bl = trainMostFrequentTag(pre);
const baseline = tagAccuracy(bl, test).accuracy;
const dict = wordTags(pre);
const view: PosView =
  fmt === 'next' ? { hint: (w) => bl.byWord.get(w) as CoarseTag | undefined, nextHint: true }
  : fmt === 'hint' ? { hint: (w) => bl.predict(w) as CoarseTag }
  : {};
const peft = getPeftModel(base, { r, lora_alpha: Number(a['alpha'] ?? 2 * r), lora_dropout: 0, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] }, 'pos', { seed });
const all = posExamples(posSentences(halves.train), tok, view);
const ex = all.filter((e) => e.ids.length <= 256);
const data = new BatchIterator(ex, { batchSize: 4, order: 'shuffle', seed, pack: true, maxLength: 256 });
const optimizer = createOptimizer(peft.trainableParameters(), { lr, weightDecay: 0 });
const res = await train({ model: peft.model, optimizer, data: { train: data }, args: { steps, lr, schedule: 'cosine', warmupSteps: Math.min(10, Math.floor(steps / 10)), minLrRatio: 0.1, progress: false } });
peft.model.eval();
const losses = res.history.flatMap((h) => (h.type === 'train' ? [h.loss] : []));
const mean = (lo: number, hi: number): string => {
  const x = losses.slice(lo, hi);
  return x.length ? (x.reduce((p, q) => p + q, 0) / x.length).toFixed(3) : '-';
};
const out: Record<string, unknown> = {
  args: a,
  backend: `${getBackend().name}, ${getBackend().threads} threads`,
  trainSentences: `${ex.length} of ${all.length}`,
  baseline: +(100 * baseline).toFixed(2),
  loss: [mean(0, 50), mean(150, 200), mean(300, 350), mean(450, 500), mean(steps - 50, steps)].join(' '),
  trainSeconds: Math.round(res.seconds),
};
for (const d of a['decode'] === 'both' ? ['tags', 'dictionary'] : [a['decode'] ?? 'dictionary']) {
  const sc = scorePos(base, tok, test, { view, ...(d === 'dictionary' ? { allowed: (w: string) => dict.get(w) } : {}) });
  const vs = versusBaseline(test, sc.predictions, (w) => bl.predict(w));
  let toN = 0, toOk = 0, uN = 0, uOk = 0;
  test.forEach((s, i) =>
    s.tokens.forEach(([w, t], k) => {
      const ok = sc.predictions[i]![k] === coarseTag(t);
      if (w.toLowerCase() === 'to') (toN++, ok && toOk++);
      if (!dict.has(w)) (uN++, ok && uOk++);
    }),
  );
  out[d] = { accuracy: +(100 * sc.score.accuracy).toFixed(2), vsBaseline: +(100 * (sc.score.accuracy - baseline)).toFixed(2), fixed: `${vs.fixed} of ${vs.baselineWrong}`, broken: `${vs.broken} of ${vs.baselineRight}`, to: `${toOk} of ${toN}`, unseen: `${uOk} of ${uN}` };
}
const cpu = process.cpuUsage();
out['cpuSeconds'] = Math.round((cpu.user + cpu.system) / 1e6);
console.log(JSON.stringify(out));
