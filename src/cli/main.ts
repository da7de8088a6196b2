// The `lorakit` command. It resolves flags and calls the library like any user would.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { getBackend, nativeBackend, nativeError } from '../backend/index.js';
import { checkDataset, formatIssue } from '../data/index.js';
import { Tokenizer } from '../io/tokenizer.js';

function packageVersion(): string {
  const url = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command('lorakit')
    .description('LoRA fine-tuning for TypeScript')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('backend')
    .description('show which compute backend lorakit uses and why')
    .action(() => {
      const b = getBackend();
      const n = nativeBackend();
      console.log(`backend: ${b.name}`);
      console.log(`threads: ${b.threads}`);
      if (n) console.log(`cpu: ${n.avx2fma ? 'AVX2+FMA kernels' : 'portable kernels (no AVX2/FMA)'}`);
      else console.log(`native addon: unavailable (${nativeError()})`);
    });

  const data = program.command('data').description('work with training data');
  data
    .command('check')
    .description('check a JSONL dataset completely: every bad line (file:line) and token statistics')
    .argument('<file>', 'JSONL file: {"text"}, {"prompt","completion"} or {"messages"} per line')
    .requiredOption('--model <dir>', 'model folder whose tokenizer (and chat template) to use')
    .option('--max-length <n>', 'longest example in tokens', parseInteger, 2048)
    .option('--no-mask-prompt', 'train on prompts and non-assistant turns too')
    .action(async (file: string, o: { model: string; maxLength: number; maskPrompt: boolean }) => {
      requireFile(file, 'data file');
      requireDir(o.model, 'model folder');
      const report = await checkDataset(file, Tokenizer.fromFolder(o.model), { maxLength: o.maxLength, maskPrompt: o.maskPrompt });
      for (const p of report.problems) console.log(formatIssue(p));
      const L = report.lengths;
      console.log(`${file}: format ${report.format ?? 'unknown'}, ${report.examples} examples, ${report.totalTokens} tokens`);
      console.log(`  lengths: min ${L.min}, mean ${L.mean.toFixed(1)}, median ${L.median}, p95 ${L.p95.toFixed(0)}, max ${L.max}`);
      console.log(`  over max length ${report.maxLength}: ${report.overMaxLength}; trained tokens ${report.trainedTokens}, masked ${report.maskedTokens}; examples with nothing to train: ${report.noTargets}`);
      console.log(report.problems.length ? `${report.problems.length} problem(s)` : 'no problems');
      if (report.problems.length) process.exitCode = 1;
    });

  return program;
}

function parseInteger(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got "${v}"`);
  return n;
}

function requireFile(p: string, what: string): void {
  if (!existsSync(p)) throw new UsageError(`${what} ${p} does not exist`);
  if (!statSync(p).isFile()) throw new UsageError(`${what} ${p} is not a file`);
}

function requireDir(p: string, what: string): void {
  if (!existsSync(p)) throw new UsageError(`${what} ${p} does not exist`);
  if (!statSync(p).isDirectory()) throw new UsageError(`${what} ${p} is not a folder`);
}

/** A mistake in how the command was called: one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    const err = e as Error;
    // one clear line, never a stack trace (LORAKIT_DEBUG=1 shows it)
    console.error(`lorakit: ${err.message.split('\n').join('\n  ')}`);
    if (process.env.LORAKIT_DEBUG) console.error(err.stack);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
}

await main();
