// The training worker: holds the model, trains, generates and hands out the adapter, so the
// page stays responsive (docs/ARCHITECTURE.md §Browser). Requests and events: protocol.ts.
// The trainer awaits onStep after each step (train/trainer.ts); the worker yields there to the
// event loop so that pause, resume and cancel messages arrive between steps.
import { getBackend } from '../backend/index.js';
import { makeResident } from '../backend/transfer.js';
import { streamGenerate } from '../generate/generate.js';
import { setWarningHandler } from '../io/errors.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { loadAdapterFiles } from '../lora/files.js';
import { PeftModel } from '../lora/peft-model.js';
import type { DecoderLM } from '../models/decoder.js';
import { train } from '../train/trainer.js';
import { installBrowserBackend, registerBrowserBackend, webGpuLoader } from './backend.js';
import { loadModelFiles } from './model-files.js';
import type { Control, ModelInfo, Request, TrainSummary, WorkerMessage } from './protocol.js';
import { adapterBytes, prepareLoraRun } from './recipe.js';
import { loadBrowserWasm } from './wasm.js';
import { adapterSource } from './zip.js';

interface Scope {
  postMessage(m: WorkerMessage): void;
  onmessage: ((e: MessageEvent<(Request | Control) & { id?: number }>) => void) | null;
}
const scope = globalThis as unknown as Scope;
const post = (m: WorkerMessage): void => scope.postMessage(m);

class Cancelled extends Error {
  override name = 'Cancelled';
}

let loaded: { model: DecoderLM; tokenizer: Tokenizer; name: string } | null = null;
let peft: PeftModel<DecoderLM> | null = null;
interface RunState {
  paused: boolean;
  cancelled: boolean;
  wake: (() => void) | null;
}
let run: RunState | null = null;

function needModel(): NonNullable<typeof loaded> {
  if (!loaded) throw new Error('no model loaded yet');
  return loaded;
}

/** Drops the current adapter: the model is the base again. */
function dropAdapter(): void {
  if (peft) peft.unload();
  peft = null;
}

const nextTask = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

async function handle(id: number, req: Request): Promise<unknown> {
  switch (req.type) {
    case 'init': {
      setWarningHandler((message, code) => post({ type: 'log', line: `warning (${code}): ${message}` }));
      // the WebAssembly module the build puts next to this worker (dist/browser/wasm/)
      const here = (globalThis as unknown as { location: { href: string } }).location.href;
      registerBrowserBackend('wasm', () => loadBrowserWasm(new URL('wasm/', here)));
      // WebGPU first in 'auto' when the adapter is not a fallback one (docs/ARCHITECTURE.md §WebGPU)
      registerBrowserBackend('webgpu', webGpuLoader());
      const info = await installBrowserBackend(req.backend, { allowFallbackAdapter: req.allowFallbackAdapter === true });
      post({ type: 'log', line: info.notice });
      return info;
    }
    case 'loadModel': {
      dropAdapter();
      loaded = null;
      const m = await loadModelFiles(req.source);
      // on a device backend (WebGPU) the weights are uploaded once here, not by every kernel call
      if (!getBackend().memory.hostVisible) makeResident(m.model.parameters());
      loaded = { model: m.model, tokenizer: m.tokenizer, name: req.name };
      const params = m.model.parameters();
      const info: ModelInfo = {
        name: req.name,
        modelType: m.model.info.modelType,
        layers: m.model.info.numLayers,
        hidden: m.model.info.hiddenSize,
        vocab: m.model.info.vocabSize,
        params: params.reduce((n, p) => n + p.value.size, 0),
        dtype: params[0]?.value.dtype ?? 'f32',
        bytes: m.bytes,
      };
      return info;
    }
    case 'train': {
      const { model, tokenizer } = needModel();
      dropAdapter();
      const r = prepareLoraRun(model, tokenizer, req.data.text, req.data.file, req.settings);
      peft = r.peft;
      const state: RunState = { paused: false, cancelled: false, wake: null };
      run = state;
      const t0 = performance.now();
      let firstLoss = NaN;
      try {
        const result = await train({
          model,
          optimizer: r.optimizer,
          data: { train: r.train, valid: r.valid },
          args: r.args,
          rngs: { lora: r.peft.rng },
          host: { progress: () => ({ update() {}, log: (line) => post({ type: 'log', line }), stop() {} }) },
          callbacks: {
            onStep: async (row) => {
              if (Number.isNaN(firstLoss) && !row.skipped) firstLoss = row.loss;
              const total = r.args.steps ?? Math.max(1, Math.ceil(((r.args.epochs ?? 1) * r.train.batchesPerEpoch) / (r.args.gradAccum ?? 1)));
              const elapsed = (performance.now() - t0) / 1000;
              post({
                type: 'progress',
                id,
                event: { step: row.step, totalSteps: total, loss: row.loss, lr: row.lr, tokensPerSecond: row.tokensPerSecond, eta: (elapsed / row.step) * (total - row.step), elapsed, tokens: row.tokens, trainerElapsed: row.elapsed, skipped: row.skipped === true },
              });
              await nextTask(); // pause, resume and cancel arrive here
              if (state.paused && !state.cancelled) {
                post({ type: 'state', id, state: 'paused', step: row.step });
                while (state.paused && !state.cancelled) await new Promise<void>((w) => (state.wake = w));
                if (!state.cancelled) post({ type: 'state', id, state: 'running', step: row.step });
              }
              if (state.cancelled) throw new Cancelled('training cancelled');
            },
            onEval: (row) => post({ type: 'eval', id, event: { step: row.step, loss: row.loss, perplexity: row.perplexity } }),
          },
        });
        model.train(false);
        const c = r.peft.config('default');
        const summary: TrainSummary = {
          steps: result.steps,
          finalLoss: result.finalLoss,
          firstLoss,
          finalValidLoss: result.finalValidLoss,
          seconds: result.seconds,
          tokensPerSecond: result.tokensPerSecond,
          trainableParams: result.trainableParams,
          examples: r.data.train.examples.length,
          validExamples: r.data.valid?.examples.length ?? 0,
          truncated: r.data.train.truncated,
          format: r.data.train.format,
          targets: Array.isArray(c.target_modules) ? [...c.target_modules] : [String(c.target_modules)],
        };
        return summary;
      } catch (e) {
        model.train(false);
        if (e instanceof Cancelled) dropAdapter();
        throw e;
      } finally {
        run = null;
      }
    }
    case 'generate': {
      const { model, tokenizer } = needModel();
      const ids = tokenizer.encode(req.prompt);
      if (ids.length === 0) throw new Error('the prompt encodes to no tokens');
      if (req.adapter && !peft) throw new Error('no adapter yet: train one or load one');
      const t0 = performance.now();
      const go = async () => {
        const stream = streamGenerate(model, [ids], { tokenizer, maxNewTokens: req.maxNewTokens, temperature: req.temperature, seed: req.seed });
        for await (const ev of stream) if (ev.text) post({ type: 'token', id, text: ev.text });
        return (await stream.result)[0]!;
      };
      // the base model: the adapter switched off for this call only
      const res = req.adapter || !peft ? await go() : await peft.disableAdapter(go);
      return { text: res.text, tokens: res.tokens.length, seconds: (performance.now() - t0) / 1000, finishReason: res.finishReason };
    }
    case 'exportAdapter': {
      if (!peft) throw new Error('no adapter yet: train one or load one');
      return Object.fromEntries(await adapterBytes(peft, needModel().name));
    }
    case 'loadAdapter': {
      const { model } = needModel();
      const src = adapterSource(new Map(req.files.map((f) => [f.name, f.bytes])), req.files.map((f) => f.name).join('+'));
      dropAdapter();
      const p = new PeftModel(model);
      model.requiresGrad(false);
      const cfg = loadAdapterFiles(p, src, 'default');
      if (!getBackend().memory.hostVisible) makeResident(model.parameters()); // the adapter's tensors too
      p.setAdapter('default');
      peft = p;
      return { r: cfg.r, alpha: cfg.lora_alpha, targets: [...p.loraLayers.keys()].length };
    }
  }
}

scope.onmessage = (e) => {
  const msg = e.data;
  if (msg.type === 'pause' || msg.type === 'resume' || msg.type === 'cancel') {
    if (!run) return;
    if (msg.type === 'pause') run.paused = true;
    else {
      if (msg.type === 'cancel') run.cancelled = true;
      run.paused = false;
      run.wake?.();
      run.wake = null;
    }
    return;
  }
  const id = msg.id ?? 0;
  handle(id, msg as Request).then(
    (value) => post({ type: 'done', id, value }),
    (err: unknown) => post({ type: 'error', id, message: err instanceof Error ? err.message : String(err), ...(err instanceof Cancelled ? { cancelled: true } : {}) }),
  );
};

