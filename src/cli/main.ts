// The `lorakit` command. It resolves flags and calls the library like any user would.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { getBackend, nativeBackend, nativeError } from '../backend/index.js';

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

  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    console.error(`lorakit: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}

await main();
