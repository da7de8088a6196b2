// lorakit data check: every bad line of a JSONL file (file:line) and token statistics.
import { join } from 'node:path';
import { Command } from 'commander';
import { Problems } from '../../io/errors.js';
import { readJsonObject } from '../../io/json.node.js';
import { modelLimits } from '../../models/load.js';
import { MODEL_FAMILIES } from '../../models/registry.js';
import { checkDataset } from '../../data/index.node.js';
import { formatIssue } from '../../data/index.js';
import { clampMaxLength, parseInteger, requireDir, requireFile } from '../common.js';
import { loadTokenizer } from '../../io/tokenizer.node.js';

export function dataCommand(): Command {
  const data = new Command('data').description('work with training data');
  data
    .command('check')
    .description('check a JSONL dataset completely: every bad line (file:line) and token statistics')
    .argument('<file>', 'JSONL file: {"text"}, {"prompt","completion"} or {"messages"} per line')
    .requiredOption('--model <dir>', 'model folder whose tokenizer (and chat template) to use')
    .option('--max-length <n>', 'longest example in tokens', parseInteger, 2048)
    .option('--no-mask-prompt', 'train on prompts and non-assistant turns too')
    .action(async function (this: Command, file: string, o: { model: string; maxLength: number; maskPrompt: boolean }) {
      requireFile(file, 'data file');
      requireDir(o.model, 'model folder');
      // with the model's config.json, what training would refuse or cut: ids past its vocabulary, rows past its positions
      const config = join(o.model, 'config.json');
      const problems = new Problems('model config', config);
      const json = readJsonObject(config, problems, false);
      problems.throwIfAny();
      // (a classifier's config has no decoder family: its data is checked as before)
      const limits = json && MODEL_FAMILIES.has(String(json['model_type'])) ? modelLimits(json, config) : null;
      const maxLength = limits ? clampMaxLength(this, o.maxLength, limits.maxPositions, o.model) : o.maxLength;
      const report = await checkDataset(file, loadTokenizer(o.model), { maxLength, maskPrompt: o.maskPrompt, ...(limits ? { vocabSize: limits.vocabSize } : {}) });
      for (const p of report.problems) console.log(formatIssue(p));
      const L = report.lengths;
      console.log(`${file}: format ${report.format ?? 'unknown'}, ${report.examples} examples, ${report.totalTokens} tokens`);
      console.log(`  lengths: min ${L.min}, mean ${L.mean.toFixed(1)}, median ${L.median}, p95 ${L.p95.toFixed(0)}, max ${L.max}`);
      console.log(`  over max length ${report.maxLength}: ${report.overMaxLength}; trained tokens ${report.trainedTokens}, masked ${report.maskedTokens}; examples with nothing to train: ${report.noTargets}`);
      console.log(report.problems.length ? `${report.problems.length} problem(s)` : 'no problems');
      if (report.problems.length) process.exitCode = 1;
    });
  return data;
}
