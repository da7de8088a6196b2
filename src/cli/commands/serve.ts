// lorakit serve: an OpenAI-compatible HTTP server (as vLLM exposes it) over one base model
// and many LoRA adapters, with continuous batching across adapters.
import { Command } from 'commander';
import { startServer, type ServeOptions } from '../../serve/index.js';
import { collect, parsePositiveInt, requireAdapterFolder, requireDir, requireModelFolder, required, UsageError, warnLine } from '../common.js';
import { parseAdapterSpecs } from '../load.js';

export interface ServeFlags {
  config?: string;
  model?: string;
  servedModelName?: string;
  adapter?: string[];
  host: string;
  port: number;
  apiKey?: string;
  adapterDir?: string;
  maxBatch: number;
  maxQueue: number;
  maxTokens: number;
  maxBodyBytes: number;
  maxModelLen?: number;
  quiet: boolean;
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port must be an integer from 0 to 65535, got "${v}"`);
  return n;
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('serve a base model and LoRA adapters over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions, /v1/load_lora_adapter, /health)')
    .option('--config <file>', 'YAML or JSON file of options (keys are flag names); flags override it')
    .option('--model <dir>', 'Hugging Face model folder (the base)')
    .option('--served-model-name <name>', "the base model's name in the API (default: the folder's name)")
    .option('--adapter <name=dir>', 'an adapter to serve under a name; repeat for several', collect)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port (0 picks a free one)', parsePort, 8000)
    .option('--api-key <key>', 'require "Authorization: Bearer KEY" on /v1/* (default: LORAKIT_API_KEY if set)')
    .option('--adapter-dir <dir>', 'folder that /v1/load_lora_adapter may load adapters from (default: run-time loading off)')
    .option('--max-batch <n>', 'sequences decoded together', parsePositiveInt, 16)
    .option('--max-queue <n>', 'requests waiting before 429 Too Many Requests', parsePositiveInt, 64)
    .option('--max-tokens <n>', 'cap on max_tokens per request', parsePositiveInt, 512)
    .option('--max-body-bytes <n>', 'request body cap (413 above it)', parsePositiveInt, 1 << 20)
    .option('--max-model-len <n>', "prompt + completion tokens at most (default: the model's positions)", parsePositiveInt)
    .option('--quiet', 'no log line per request', false)
    .action(async (flags: ServeFlags) => {
      const model = required(flags.model, '--model');
      requireModelFolder(model);
      const unnamed = (flags.adapter ?? []).find((a) => !/^[A-Za-z0-9_-]+=/.test(a));
      if (unnamed !== undefined) throw new UsageError(`name each adapter: --adapter name=${unnamed} (the name is what clients put in "model")`);
      const specs = parseAdapterSpecs(flags.adapter);
      for (const s of specs) requireAdapterFolder(s.dir);
      if (flags.adapterDir) requireDir(flags.adapterDir, 'adapter folder (--adapter-dir)');
      const opts: ServeOptions = {
        model,
        adapters: Object.fromEntries(specs.map((s) => [s.name, s.dir])),
        host: flags.host,
        port: flags.port,
        apiKey: flags.apiKey ?? process.env.LORAKIT_API_KEY ?? null,
        adapterDir: flags.adapterDir ?? null,
        maxBatch: flags.maxBatch,
        maxQueue: flags.maxQueue,
        maxTokens: flags.maxTokens,
        maxBodyBytes: flags.maxBodyBytes,
        ...(flags.servedModelName ? { servedModelName: flags.servedModelName } : {}),
        ...(flags.maxModelLen ? { maxModelLen: flags.maxModelLen } : {}),
        ...(flags.quiet ? {} : { log: (l: string) => console.error(l) }),
      };
      const server = await startServer(opts);
      const names = [server.modelName, ...specs.map((s) => s.name)];
      console.error(`lorakit: serving ${names.join(', ')} at ${server.url}/v1 (Ctrl-C stops)`);
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string): void => {
          if (stopping) return;
          stopping = true;
          console.error(`lorakit: ${signal}: finishing in-flight requests, then stopping`);
          server.close().then(resolve, (e: unknown) => {
            warnLine(`shutdown: ${(e as Error).message}`);
            resolve();
          });
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
    });
}
