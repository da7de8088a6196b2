// Flags shared by generate and chat: the model, adapters and sampling options.
import { InvalidArgumentError, type Command } from 'commander';
import type { GenerateOptions } from '../generate/index.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { collect, parseNonNegativeInt, parseNonNegativeNumber, parsePositiveNumber } from './common.js';

export interface SamplingFlags {
  config?: string;
  model?: string;
  adapter?: string[];
  adapterName?: string;
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seed: number;
  stop?: string[];
  system?: string;
}

function parseTopP(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0 && n <= 1)) throw new InvalidArgumentError(`expected a number in (0, 1], got "${v}"`);
  return n;
}

export function addModelAndSamplingOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'YAML or JSON file of options (keys are flag names); flags override it')
    .option('--model <dir>', 'Hugging Face model folder')
    .option('--adapter <dir>', 'PEFT adapter folder, or name=DIR; repeat for several', collect)
    .option('--adapter-name <names>', 'active adapter(s), comma-separated (several are summed) (default: the first --adapter)')
    .option('--max-tokens <n>', 'tokens to generate at most', parseNonNegativeInt, 256)
    .option('--temperature <t>', '0: greedy; > 0: sample from softmax(logits / t)', parseNonNegativeNumber, 0)
    .option('--top-k <k>', 'sample among the k most likely tokens (0: off)', parseNonNegativeInt, 0)
    .option('--top-p <p>', 'sample within the nucleus of probability p (1: off)', parseTopP, 1)
    .option('--repetition-penalty <x>', '> 1 discourages tokens already in the context (1: off)', parsePositiveNumber, 1)
    .option('--seed <n>', 'seed of the sampling stream', parseNonNegativeInt, 0)
    .option('--stop <text>', 'stop when the text contains this (repeatable)', collect);
}

export function generateOptions(o: SamplingFlags, tokenizer: Tokenizer): GenerateOptions {
  return {
    maxNewTokens: o.maxTokens,
    temperature: o.temperature,
    topK: o.topK,
    topP: o.topP,
    repetitionPenalty: o.repetitionPenalty,
    seed: o.seed,
    tokenizer,
    ...(o.stop && o.stop.length ? { stopStrings: o.stop } : {}),
  };
}

export function activeNames(o: SamplingFlags): string[] | undefined {
  return o.adapterName === undefined ? undefined : o.adapterName.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}
