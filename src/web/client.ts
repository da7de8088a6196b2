// The page's handle on the training worker (worker.ts): one method per request, promises for
// answers, callbacks for progress and streamed tokens (docs/ARCHITECTURE.md §Browser).
//
//   const lk = await LorakitWorker.start();                       // worker.js next to this bundle
//   await lk.loadModel({ url: '/model/' }, 'brown-llama');
//   await lk.train({ rank: 8, steps: 50, lr: 1e-3, seed: 0 }, { text: jsonl, file: 'train.jsonl' }, { onProgress });
//   await lk.generate('Once upon a time', { adapter: true, onToken: (t) => out.append(t) });
//   const zip = await lk.adapterZip();                             // PEFT files, zipped
import type { BackendChoice, BackendInfo, Control, EvalEvent, GenerateSummary, ModelInfo, ProgressEvent, Request, TrainSummary, WorkerMessage } from './protocol.js';
import type { ModelSource } from './model-files.js';
import type { LoraSettings } from './recipe.js';
import { zipAdapter } from './zip.js';

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onProgress?: (e: ProgressEvent) => void;
  onEval?: (e: EvalEvent) => void;
  onToken?: (text: string) => void;
  onState?: (state: 'paused' | 'running', step: number) => void;
}

/** A failed request; `cancelled` when a training run was cancelled. */
export class WorkerError extends Error {
  override name = 'WorkerError';
  constructor(
    message: string,
    readonly cancelled: boolean,
  ) {
    super(message);
  }
}

export interface TrainCallbacks {
  onProgress?: (e: ProgressEvent) => void;
  onEval?: (e: EvalEvent) => void;
  /** the run paused after `step` (pause()), or goes on (resume()) */
  onState?: (state: 'paused' | 'running', step: number) => void;
}

export interface GenerateOptions {
  /** with the adapter (default) or the base model alone */
  adapter?: boolean;
  maxNewTokens?: number;
  /** 0: greedy (default) */
  temperature?: number;
  seed?: number;
  onToken?: (text: string) => void;
}

export class LorakitWorker {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** log lines from the worker (warnings, evaluation lines) */
  onLog: (line: string) => void = () => {};
  backend: BackendInfo | null = null;

  constructor(readonly worker: Worker) {
    worker.onmessage = (e: MessageEvent<WorkerMessage>) => this.receive(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      for (const p of this.pending.values()) p.reject(new WorkerError(`worker failed: ${e.message}`, false));
      this.pending.clear();
    };
  }

  /**
   * Starts the worker (default: worker.js next to this module, as the bundle ships it; a
   * classic worker) and installs its backend ('auto': WebGPU on an adapter that is not a
   * fallback one, or on any with allowFallbackAdapter; else wasm when it loads; else ref).
   */
  static async start(opts: { url?: string | URL; backend?: BackendChoice; allowFallbackAdapter?: boolean } = {}): Promise<LorakitWorker> {
    const w = new LorakitWorker(new Worker(opts.url ?? new URL('./worker.js', import.meta.url)));
    w.backend = (await w.request({ type: 'init', backend: opts.backend ?? 'auto', ...(opts.allowFallbackAdapter ? { allowFallbackAdapter: true } : {}) })) as BackendInfo;
    return w;
  }

  private receive(m: WorkerMessage): void {
    if (m.type === 'log') return this.onLog(m.line);
    const p = this.pending.get(m.id);
    if (!p) return;
    switch (m.type) {
      case 'progress':
        return p.onProgress?.(m.event);
      case 'eval':
        return p.onEval?.(m.event);
      case 'token':
        return p.onToken?.(m.text);
      case 'state':
        return p.onState?.(m.state, m.step);
      case 'done':
        this.pending.delete(m.id);
        return p.resolve(m.value);
      case 'error':
        this.pending.delete(m.id);
        return p.reject(new WorkerError(m.message, m.cancelled === true));
    }
  }

  private request(req: Request, extra: Omit<Pending, 'resolve' | 'reject'> = {}, transfer: Transferable[] = []): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...extra });
      this.worker.postMessage({ ...req, id }, transfer);
    });
  }

  private control(c: Control): void {
    this.worker.postMessage(c);
  }

  /** Loads a model and tokenizer (URLs or picked files); `name` goes into adapters as base_model_name_or_path. */
  async loadModel(source: ModelSource, name: string): Promise<ModelInfo> {
    return (await this.request({ type: 'loadModel', source, name })) as ModelInfo;
  }

  /** Trains a fresh adapter on JSONL text (as `lorakit train` would); rejects with `cancelled` on cancel(). */
  async train(settings: LoraSettings, data: { text: string; file: string }, cb: TrainCallbacks = {}): Promise<TrainSummary> {
    return (await this.request({ type: 'train', settings, data }, cb)) as TrainSummary;
  }

  /** Pauses the run in flight after its current step. */
  pause(): void {
    this.control({ type: 'pause' });
  }

  resume(): void {
    this.control({ type: 'resume' });
  }

  /** Stops the run in flight after its current step; its adapter is dropped. */
  cancel(): void {
    this.control({ type: 'cancel' });
  }

  /** Generates a completion, streaming its text to onToken. */
  async generate(prompt: string, o: GenerateOptions = {}): Promise<GenerateSummary> {
    const req: Request = { type: 'generate', prompt, adapter: o.adapter ?? true, maxNewTokens: o.maxNewTokens ?? 48, temperature: o.temperature ?? 0, seed: o.seed ?? 0 };
    return (await this.request(req, o.onToken ? { onToken: o.onToken } : {})) as GenerateSummary;
  }

  /** The adapter's PEFT files by name (adapter_config.json, adapter_model.safetensors). */
  async adapterFiles(): Promise<Map<string, Uint8Array>> {
    return new Map(Object.entries((await this.request({ type: 'exportAdapter' })) as Record<string, Uint8Array>));
  }

  /** The adapter's PEFT files as one zip. */
  async adapterZip(): Promise<Uint8Array> {
    return zipAdapter(await this.adapterFiles());
  }

  /** Loads an adapter: the two PEFT files, or a zip holding them. */
  async loadAdapter(files: readonly (Blob & { name: string })[]): Promise<{ r: number; alpha: number; targets: number }> {
    const list = await Promise.all(files.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
    return (await this.request({ type: 'loadAdapter', files: list })) as { r: number; alpha: number; targets: number };
  }

  terminate(): void {
    this.worker.terminate();
    for (const p of this.pending.values()) p.reject(new WorkerError('worker terminated', false));
    this.pending.clear();
  }
}
