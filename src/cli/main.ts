// The `lorakit` command. It resolves flags (flags > --config file > defaults) and calls the
// library like any user would. One file per command in ./commands.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { backendCommand } from './commands/backend.js';
import { chatCommand } from './commands/chat.js';
import { compareCommand } from './commands/compare.js';
import { dataCommand } from './commands/data.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { exportCommand } from './commands/export.js';
import { generateCommand } from './commands/generate.js';
import { inspectCommand } from './commands/inspect.js';
import { mergeCommand } from './commands/merge.js';
import { predictCommand } from './commands/predict.js';
import { serveCommand } from './commands/serve.js';
import { trainCommand } from './commands/train.js';
import { webCommand } from './commands/web.js';
import { installNodePlatform } from '../platform.node.js';
import { UsageError, applyConfigFile, oneLine, stdoutClosed, warnLine } from './common.js';

export { UsageError } from './common.js';

function packageVersion(): string {
  const url = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
}

/** Errors from commander (unknown flags, bad values) as one `lorakit: …` line; exits through exitOverride. */
function configure(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({
    outputError: (str, write) => write(`lorakit: ${str.replace(/^error: /, '').trim().split('\n').join(' ')} (see --help)\n`),
  });
  for (const sub of cmd.commands) configure(sub);
}

export function buildProgram(): Command {
  const program = new Command('lorakit').description('LoRA fine-tuning for TypeScript').version(packageVersion());
  for (const c of [trainCommand(), generateCommand(), chatCommand(), evalCommand(), predictCommand(), mergeCommand(), exportCommand(), inspectCommand(), dataCommand(), serveCommand(), webCommand(), demoCommand(), compareCommand(), backendCommand()]) program.addCommand(c);
  // --config FILE (YAML or JSON) fills the options no flag gave; inspect's --config is a model config.json
  program.hook('preAction', async (_root, action) => {
    if (action.name() !== 'inspect' && action.options.some((o) => o.long === '--config')) await applyConfigFile(action, warnLine);
  });
  configure(program);
  return program;
}

async function main(): Promise<void> {
  await installNodePlatform();
  // library warnings (process.emitWarning) as one plain line, not Node's "(node:PID) Warning:"
  process.removeAllListeners('warning');
  process.on('warning', (w) => warnLine(w.message));
  // output piped into a command that stops reading (| head): stop quietly, or carry on without stdout
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    if (stdoutClosed.exit) process.exit(0);
  });
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and --version exit 0; usage mistakes (unknown flag, bad value) exit 2
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    const err = e as Error;
    // one clear line, never a stack trace (LORAKIT_DEBUG=1 shows it)
    console.error(`lorakit: ${oneLine(err.message ?? String(e))}`);
    if (process.env.LORAKIT_DEBUG) console.error(err.stack);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
}

await main();
