// lorakit predict: labels with probabilities from a classifier (BERT / RoBERTa / ViT, with its
// adapter) for texts, sentence pairs, image files, or a whole file / folder of them.
import { Command } from 'commander';
import type { PredictInput } from '../../tasks/classify.js';
import { predict } from '../../tasks/classify.js';
import { readPredictInputs, type PredictItem } from '../../tasks/cli-helpers.js';
import { openClassifier, requirePath } from '../classify.js';
import { UsageError, collect, parsePositiveInt, required, requireFile } from '../common.js';
import { requireClassifier } from '../task.js';

interface PredictFlags {
  config?: string;
  model?: string;
  adapter?: string[];
  text?: string[];
  textPair?: string[];
  image?: string[];
  data?: string;
  topK?: number;
  batchSize: number;
  maxLength?: number;
  json: boolean;
}

export function predictCommand(): Command {
  return new Command('predict')
    .description('labels with probabilities from a classifier (BERT, RoBERTa, ViT) for texts, text pairs or images')
    .option('--config <file>', 'YAML or JSON file of options (keys are flag names); flags override it')
    .option('--model <dir>', 'Hugging Face model folder (bert, roberta or vit)')
    .option('--adapter <dir>', 'PEFT adapter folder trained on the model (its labels.json names the labels)', collect)
    .option('--text <text>', 'a text to classify; repeat for several', collect)
    .option('--text-pair <text>', 'the second sentence of a pair, one for each --text', collect)
    .option('--image <file>', 'an image file (PNG or JPEG) to classify; repeat for several', collect)
    .option('--data <path>', 'a JSONL of {"text"[,"text_pair"]} or {"image"} lines ("label" optional), or a folder of images')
    .option('--top-k <n>', 'print the n most probable labels (default: all)', parsePositiveInt)
    .option('--batch-size <n>', 'inputs per forward pass', parsePositiveInt, 16)
    .option('--max-length <n>', 'longest text in tokens (longer ones are cut) (default: the model\'s positions, at most 512)', parsePositiveInt)
    .option('--json', 'one JSON object per input: {"input", "label", "probabilities": {label: p, …}}', false)
    .action(async function (this: Command) {
      await runPredict(this);
    });
}

/** The inputs the flags name: exactly one of --text, --image, --data. */
function flagInputs(o: PredictFlags): { kind: 'text' | 'image' | 'data'; items: PredictItem[] } {
  const kinds = [o.text && '--text', o.image && '--image', o.data !== undefined && '--data'].filter((k): k is string => typeof k === 'string');
  if (kinds.length === 0) throw new UsageError('give something to classify: --text TEXT, --image FILE or --data FILE|DIR');
  if (kinds.length > 1) throw new UsageError(`give one of --text, --image, --data, not ${kinds.join(' and ')}`);
  if (o.textPair && !o.text) throw new UsageError('--text-pair needs --text (the first sentence)');
  if (o.text) {
    const pairs = o.textPair;
    if (pairs && pairs.length !== o.text.length) throw new UsageError(`${o.text.length} --text but ${pairs.length} --text-pair; give one --text-pair for each --text`);
    const items = o.text.map((text, i): PredictItem => {
      const input: PredictInput = pairs ? { text, textPair: pairs[i]! } : text;
      return { input, where: pairs ? `${JSON.stringify(text)} / ${JSON.stringify(pairs[i])}` : JSON.stringify(text), gold: null };
    });
    return { kind: 'text', items };
  }
  if (o.image) {
    for (const f of o.image) requireFile(f, 'image');
    return { kind: 'image', items: o.image.map((f) => ({ input: { image: f }, where: f, gold: null })) };
  }
  requirePath(o.data!, 'data');
  return { kind: 'data', items: [] };
}

async function runPredict(cmd: Command): Promise<void> {
  const o = cmd.opts<PredictFlags>();
  const modelDir = required(o.model, '--model DIR');
  requireClassifier(modelDir, 'predict');
  const given = flagInputs(o);
  const kind = given.kind;
  const { model, pre } = openClassifier(modelDir, o.adapter);
  if (kind === 'image' && pre.task === 'text') throw new UsageError(`--image: the model (${model.info.modelType}) classifies text; give --text`);
  if (kind === 'text' && pre.task === 'image') throw new UsageError(`--text: the model (${model.info.modelType}) classifies images; give --image`);
  const items = kind === 'data' ? readPredictInputs(pre.task, o.data!) : given.items;
  const preds = predict(
    model,
    pre,
    items.map((it) => it.input),
    { batchSize: o.batchSize, ...(o.maxLength !== undefined ? { maxLength: o.maxLength } : {}) },
  );
  const k = Math.min(o.topK ?? model.labels.length, model.labels.length);
  preds.forEach((p, i) => {
    const it = items[i]!;
    const top = p.probabilities.map((prob, j) => ({ label: model.labels[j]!, prob })).sort((a, b) => b.prob - a.prob).slice(0, k);
    if (o.json) {
      const input = typeof it.input === 'string' ? it.input : 'image' in it.input ? it.input.image : { text: it.input.text, text_pair: it.input.textPair };
      console.log(JSON.stringify({ input, ...(kind === 'data' ? { where: it.where } : {}), label: p.label, probabilities: Object.fromEntries(top.map((t) => [t.label, t.prob])), ...(it.gold !== null ? { gold: it.gold } : {}) }));
    } else {
      console.log(`${it.where}: ${top.map((t) => `${t.label} ${t.prob.toFixed(4)}`).join(', ')}${it.gold !== null ? ` (label: ${it.gold})` : ''}`);
    }
  });
}
