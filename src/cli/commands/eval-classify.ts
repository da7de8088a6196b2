// lorakit eval --task classify: loss, accuracy and macro-F1 of a classifier (with its adapter)
// on labelled data; --verbose adds per-label scores and the confusion matrix.
import type { Command } from 'commander';
import { ClassifyBatches } from '../../data/classify.js';
import { evaluateClassifier, loadClassifyExamples } from '../../tasks/classify.js';
import { metricsLine, openClassifier, perLabelLines, requirePath } from '../classify.js';
import { UsageError, given, required, warnLine } from '../common.js';
import type { EvalFlags } from './eval-flags.js';

export async function runEvalClassify(cmd: Command, modelDir: string): Promise<void> {
  const o = cmd.opts<EvalFlags>();
  const dataPath = required(o.data, '--data FILE|DIR');
  if (given(cmd, 'maskPrompt')) throw new UsageError('--mask-prompt / --no-mask-prompt do not apply to --task classify');
  if (o.adapterName !== undefined) throw new UsageError('--adapter-name does not apply to --task classify (one --adapter)');
  requirePath(dataPath, 'data');
  const { model, pre, adapter } = openClassifier(modelDir, o.adapter);
  if (!adapter && model.labels.every((l, i) => l === `LABEL_${i}`)) warnLine(`model folder ${modelDir} has no label names (${model.labels.slice(0, 3).join(', ')}${model.labels.length > 3 ? ', …' : ''}); to evaluate a fine-tuned classifier, give its --adapter (labels.json names the labels)`);
  const t0 = Date.now();
  // the labels are the model's (the adapter's labels.json): a data label outside them is an error with file:line
  const examples = loadClassifyExamples(model, pre, dataPath, model.labels, given(cmd, 'maxLength') ? { maxLength: o.maxLength } : {});
  const batches = new ClassifyBatches(examples, { batchSize: o.batchSize, shuffle: false, padId: pre.padId }).all();
  const m = evaluateClassifier(model, batches);
  const seconds = (Date.now() - t0) / 1000;
  if (o.json) {
    console.log(JSON.stringify({ task: 'classify', model: modelDir, adapter, data: dataPath, labels: model.labels, ...m, seconds }));
    return;
  }
  const what = adapter ? `${modelDir} + adapter ${adapter}` : modelDir;
  console.log(`${what} on ${dataPath}: ${m.examples} examples, ${model.labels.length} labels`);
  console.log(`${metricsLine(m)} (${seconds.toFixed(1)} s)`);
  if (o.verbose) for (const line of perLabelLines(m)) console.log(line);
}
