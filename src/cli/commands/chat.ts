// lorakit chat: a conversation over stdin with the model's chat template. History is kept;
// /reset clears it, /exit (or end of input) quits. Works with piped stdin.
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { streamGenerate } from '../../generate/index.js';
import type { ChatMessage } from '../../io/tokenizer.js';
import { required } from '../common.js';
import { attachAdapters, openModel, parseAdapterSpecs } from '../load.js';
import { activeNames, addModelAndSamplingOptions, generateOptions, type SamplingFlags } from '../sampling.js';

export function chatCommand(): Command {
  const cmd = new Command('chat').description('chat with a model (and adapters) over stdin using its chat template; /reset clears the history, /exit quits');
  addModelAndSamplingOptions(cmd)
    .option('--system <text>', 'system message at the start of the conversation')
    .action(async function (this: Command) {
      await runChat(this.opts<SamplingFlags>());
    });
  return cmd;
}

async function runChat(o: SamplingFlags): Promise<void> {
  const modelDir = required(o.model, '--model DIR');
  const loaded = openModel(modelDir);
  attachAdapters(loaded, parseAdapterSpecs(o.adapter), activeNames(o));
  const { model, tokenizer } = loaded;
  if (!tokenizer.hasChatTemplate) throw new Error(`model folder ${modelDir} has no chat template (tokenizer_config.json chat_template or chat_template.jinja); chat needs one`);
  const tty = process.stdin.isTTY === true;
  const start = (): ChatMessage[] => (o.system !== undefined ? [{ role: 'system', content: o.system }] : []);
  let history = start();
  const rl = createInterface({ input: process.stdin, terminal: tty });
  const prompt = (): void => {
    if (tty) process.stdout.write('> ');
  };
  if (tty) process.stdout.write('lorakit chat: /reset clears the history, /exit quits\n');
  prompt();
  let turn = 0;
  for await (const raw of rl) {
    const line = raw.trim();
    if (line === '/exit' || line === '/quit') break;
    if (line === '/reset') {
      history = start();
      process.stdout.write('(history cleared)\n');
      prompt();
      continue;
    }
    if (line === '') {
      prompt();
      continue;
    }
    history.push({ role: 'user', content: line });
    const ids = tokenizer.applyChatTemplate(history, { addGenerationPrompt: true, tokenize: true }).ids;
    const stream = streamGenerate(model, [ids], { ...generateOptions(o, tokenizer), seed: o.seed + turn++ });
    for await (const ev of stream) if (ev.text) process.stdout.write(ev.text);
    const [res] = await stream.result;
    process.stdout.write('\n');
    process.stderr.write(`[prompt ${ids.length} tokens, ${res!.tokens.length} generated, finish: ${res!.finishReason}]\n`);
    history.push({ role: 'assistant', content: res!.text });
    prompt();
  }
  rl.close();
}
