// lorakit generate: one completion, streamed to stdout as the tokens come.
import { Command } from 'commander';
import { streamGenerate } from '../../generate/index.js';
import { UsageError, required } from '../common.js';
import { attachAdapters, openModel, parseAdapterSpecs } from '../load.js';
import { activeNames, addModelAndSamplingOptions, generateOptions, type SamplingFlags } from '../sampling.js';

interface GenerateFlags extends SamplingFlags {
  prompt?: string;
  chat: boolean;
  ids: boolean;
}

export function generateCommand(): Command {
  const cmd = new Command('generate').description('generate a completion of --prompt, streamed to stdout (greedy unless --temperature > 0)');
  addModelAndSamplingOptions(cmd)
    .option('--prompt <text>', 'the prompt')
    .option('--chat', 'wrap the prompt as a user turn with the model\'s chat template', false)
    .option('--system <text>', 'system message (with --chat)')
    .option('--ids', 'also print the generated token ids (to stderr)', false)
    .action(async function (this: Command) {
      await runGenerate(this.opts<GenerateFlags>());
    });
  return cmd;
}

async function runGenerate(o: GenerateFlags): Promise<void> {
  const modelDir = required(o.model, '--model DIR');
  const prompt = required(o.prompt, '--prompt TEXT');
  if (o.system !== undefined && !o.chat) throw new UsageError('--system needs --chat');
  const loaded = openModel(modelDir);
  attachAdapters(loaded, parseAdapterSpecs(o.adapter), activeNames(o));
  const { model, tokenizer } = loaded;
  let ids: number[];
  if (o.chat) {
    if (!tokenizer.hasChatTemplate) throw new Error(`model folder ${modelDir} has no chat template (tokenizer_config.json chat_template or chat_template.jinja); drop --chat`);
    const messages = [...(o.system !== undefined ? [{ role: 'system', content: o.system }] : []), { role: 'user', content: prompt }];
    ids = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }).ids;
  } else {
    ids = tokenizer.encode(prompt);
  }
  if (ids.length === 0) throw new UsageError('--prompt encodes to no tokens (the model needs at least one)');
  const t0 = Date.now();
  const stream = streamGenerate(model, [ids], generateOptions(o, tokenizer));
  for await (const ev of stream) if (ev.text) process.stdout.write(ev.text);
  const [res] = await stream.result;
  process.stdout.write('\n');
  const s = (Date.now() - t0) / 1000;
  if (o.ids) process.stderr.write(`ids: ${res!.tokens.join(' ')}\n`);
  process.stderr.write(`[prompt ${ids.length} tokens, ${res!.tokens.length} generated, ${(res!.tokens.length / Math.max(s, 1e-3)).toFixed(1)} tokens/s, finish: ${res!.finishReason}]\n`);
}
