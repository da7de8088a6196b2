// lorakit demo (and `npm start`): LoRA on the bundled Brown-corpus model, end to end: a
// part-of-speech adapter and a genre-style adapter trained on held-out Brown documents,
// before/after metrics, PEFT adapter folders, and one base model switching between them.
import { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { runDemo, type PosDecode, type PosFormat } from '../../demo/demo.js';
import { checkOutput, parsePositiveInt, requireModelFolder } from '../common.js';

function parsePosFormat(v: string): PosFormat {
  if (v !== 'next' && v !== 'hint' && v !== 'plain') throw new InvalidArgumentError(`expected next, hint or plain, got ${JSON.stringify(v)}`);
  return v;
}

function parsePosDecode(v: string): PosDecode {
  if (v !== 'dictionary' && v !== 'tags') throw new InvalidArgumentError(`expected dictionary or tags, got ${JSON.stringify(v)}`);
  return v;
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('fine-tune the bundled model with two LoRA adapters (part-of-speech tagging, a genre style), show before/after metrics and switch between them')
    .option('--model <dir>', 'base model folder (default: the bundled models/brown-llama)')
    .option('--out <dir>', 'where the adapters are written', 'lorakit-demo')
    .option('--quick', 'a few steps only (a smoke run)', false)
    .option('--pos-steps <n>', 'training steps of the part-of-speech adapter', parsePositiveInt)
    .option('--pos-format <format>', 'part-of-speech task format: next (each word shown with the most-frequent-tag baseline\'s tags for it and for the next word, "?" for words the baseline never saw; the default), hint (the word\'s own tag only) or plain', parsePosFormat)
    .option('--pos-decode <set>', 'tags the part-of-speech decoding picks from: dictionary (the tags the word has in the baseline\'s training data, all 12 for a word it never saw; the default) or tags (all 12)', parsePosDecode)
    .option('--genre-steps <n>', 'training steps of the genre adapter', parsePositiveInt)
    .option('--seed <n>', 'random seed', parsePositiveInt)
    .option('--no-progress', 'plain log lines instead of progress bars')
    .action(async (o: { model?: string; out: string; quick: boolean; posSteps?: number; posFormat?: PosFormat; posDecode?: PosDecode; genreSteps?: number; seed?: number; progress: boolean }) => {
      if (o.model) requireModelFolder(o.model);
      if (o.model) checkOutput('--out', o.out, [{ flag: '--model', path: o.model }]);
      await runDemo({
        out: o.out,
        quick: o.quick,
        progress: o.progress,
        ...(o.model ? { model: o.model } : {}),
        ...(o.posSteps ? { posSteps: o.posSteps } : {}),
        ...(o.posFormat ? { posFormat: o.posFormat } : {}),
        ...(o.posDecode ? { posDecode: o.posDecode } : {}),
        ...(o.genreSteps ? { genreSteps: o.genreSteps } : {}),
        ...(o.seed ? { seed: o.seed } : {}),
      });
    });
}
