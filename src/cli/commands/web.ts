// lorakit web: serves the in-browser fine-tuning page (docs/ARCHITECTURE.md §Browser) with a
// model folder preloaded (default: the bundled model) and the demo tasks, cross-origin isolated,
// on loopback unless --host says otherwise. Runs until SIGINT/SIGTERM.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { BUNDLED_MODEL_DIR } from '../../demo/demo.js';
import { webTasks } from '../../demo/web-tasks.js';
import { startWebServer } from '../../web/server.node.js';
import { parseNonNegativeInt, parsePositiveInt, requireModelFolder } from '../common.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** dist/browser, built now when it is missing or --rebuild asks (esbuild must be installed then). */
async function browserBundle(rebuild: boolean): Promise<string> {
  const dir = path.join(ROOT, 'dist/browser');
  if (!rebuild && ['index.html', 'app.js', 'worker.js'].every((f) => fs.existsSync(path.join(dir, f)))) return dir;
  const script = path.join(ROOT, 'scripts/build-browser.mjs');
  try {
    const { buildBrowser } = (await import(script)) as { buildBrowser(out: string): Promise<unknown> };
    await buildBrowser(dir);
  } catch (e) {
    throw new Error(`the browser bundle (${dir}) is missing and cannot be built here: ${(e as Error).message}. Run \`npm run build\` in a checkout (it needs esbuild).`);
  }
  return dir;
}

export function webCommand(): Command {
  return new Command('web')
    .description('serve the in-browser fine-tuning page: train a LoRA adapter in a Web Worker with a live loss chart, compare base and adapter, download the PEFT adapter')
    .option('--model <dir>', 'model folder to preload (default: the bundled models/brown-llama)')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0: any free one)', parseNonNegativeInt, 8765)
    .option('--examples <n>', 'lines per demo dataset', parsePositiveInt, 256)
    .option('--rebuild', 'rebuild the browser bundle (dist/browser) first', false)
    .action(async (o: { model?: string; host: string; port: number; examples: number; rebuild: boolean }) => {
      if (o.model) requireModelFolder(o.model);
      const modelDir = path.resolve(o.model ?? BUNDLED_MODEL_DIR);
      const staticDir = await browserBundle(o.rebuild);
      const server = await startWebServer({
        staticDir,
        modelDir,
        modelName: path.basename(modelDir),
        datasets: () => webTasks(o.examples),
        host: o.host,
        port: o.port,
      });
      console.log(`lorakit web: ${server.url} (model ${modelDir}; Ctrl-C stops)`);
      if (!['127.0.0.1', 'localhost', '::1'].includes(o.host)) console.log('note: listening beyond loopback; browsers give SharedArrayBuffer (threads) only on localhost or HTTPS');
      await new Promise<void>((resolve) => {
        const stop = (): void => void server.close().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
