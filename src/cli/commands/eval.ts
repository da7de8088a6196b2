// lorakit eval: loss and perplexity of a model (with an adapter) on a JSONL file: the
// token-weighted mean of the next-token cross-entropy over the targets. For a classifier
// (--task classify, or a BERT / RoBERTa / ViT folder): loss, accuracy and macro-F1.
import { Command, Option } from 'commander';
import { BatchIterator, padIdFor } from '../../data/index.js';
import { loadDataset } from '../../data/index.node.js';
import { causalLmObjective } from '../../train/trainer.js';
import { clampMaxLength, collect, droppedNote, parseChoice, parsePositiveInt, required, requireFile } from '../common.js';
import { attachAdapters, openModel, parseAdapterSpecs } from '../load.js';
import { TASKS, resolveTask } from '../task.js';
import { runEvalClassify } from './eval-classify.js';
import type { EvalFlags } from './eval-flags.js';

export function evalCommand(): Command {
  return new Command('eval')
    .description('loss and perplexity on a JSONL file (token-weighted mean over the trained targets); classifiers: loss, accuracy and macro-F1')
    .option('--config <file>', 'YAML or JSON file of options (keys are flag names); flags override it')
    .addOption(new Option('--task <task>', 'causal or classify (default: from the model\'s model_type: BERT, RoBERTa, ViT classify)').choices(TASKS).argParser(parseChoice(TASKS)))
    .option('--model <dir>', 'Hugging Face model folder')
    .option('--adapter <dir>', 'PEFT adapter folder, or name=DIR; repeat for several', collect)
    .option('--adapter-name <names>', 'active adapter(s), comma-separated (default: the first --adapter)')
    .option('--data <path>', 'JSONL: {"text"}, {"prompt","completion"} or {"messages"} per line; classify: {"text"[,"text_pair"],"label"} lines, an image folder per class, or {"image","label"} lines')
    .option('--batch-size <n>', 'examples per forward pass', parsePositiveInt, 8)
    .option('--max-length <n>', 'longest example in tokens (longer ones are cut) (classify: default the model\'s positions, at most 512)', parsePositiveInt, 2048)
    .option('--mask-prompt', 'score only completions / assistant turns (default)')
    .option('--no-mask-prompt', 'score prompts and every chat turn too')
    .option('--json', 'print the result as one JSON object', false)
    .option('--verbose', 'classify: per-label precision, recall, F1 and the confusion matrix', false)
    .action(async function (this: Command) {
      const o = this.opts<EvalFlags>();
      const modelDir = required(o.model, '--model DIR');
      if (resolveTask(modelDir, o.task) === 'classify') await runEvalClassify(this, modelDir);
      else await runEval(o, this);
    });
}

async function runEval(o: EvalFlags, cmd: Command): Promise<void> {
  const modelDir = required(o.model, '--model DIR');
  const dataFile = required(o.data, '--data FILE');
  requireFile(dataFile, 'data file');
  const loaded = openModel(modelDir);
  const names = o.adapterName?.split(',').map((s) => s.trim()).filter((s) => s);
  attachAdapters(loaded, parseAdapterSpecs(o.adapter), names);
  const { model, tokenizer } = loaded;
  // a model with learned positions scores examples cut at its limit (it cannot run longer rows)
  const maxLength = clampMaxLength(cmd, o.maxLength, model.info.maxPositions, modelDir);
  const ds = await loadDataset(dataFile, tokenizer, { maxLength, maskPrompt: o.maskPrompt ?? true, vocabSize: model.info.vocabSize });
  const it = new BatchIterator(ds.examples, { batchSize: o.batchSize, order: 'sequential', padId: padIdFor(tokenizer) });
  const objective = causalLmObjective(model);
  model.eval();
  const t0 = Date.now();
  let sum = 0;
  let count = 0;
  let tokens = 0;
  for (const b of it.epochIterator(0)) {
    const r = objective.evaluate(b);
    sum += r.lossSum;
    count += r.count;
    tokens += b.tokens;
  }
  const loss = sum / count;
  const seconds = (Date.now() - t0) / 1000;
  const result = { data: dataFile, examples: ds.examples.length, targets: count, tokens, loss, perplexity: Math.exp(loss), seconds };
  if (o.json) {
    console.log(JSON.stringify(result));
    return;
  }
  const what = o.adapter?.length ? `${modelDir} + adapter ${o.adapter.join(', ')}` : modelDir;
  console.log(`${what} on ${dataFile}: ${ds.examples.length} examples, ${count} target tokens${ds.truncated ? ` (${ds.truncated} examples cut at ${maxLength} tokens)` : ''}${droppedNote(ds)}`);
  console.log(`loss ${loss.toFixed(4)}, perplexity ${Math.exp(loss).toFixed(3)} (${seconds.toFixed(1)} s, ${(tokens / Math.max(seconds, 1e-3)).toFixed(0)} tokens/s)`);
}
