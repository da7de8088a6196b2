// The page `lorakit web` serves (docs/ARCHITECTURE.md §Browser): pick a demo task or upload
// JSONL, set rank, targets, steps and learning rate, train in the worker with a live loss
// chart (lossCurveSvg, the code that draws a run's loss.svg), generate with the base model and
// the adapter side by side, download the adapter or load one back.
import { lossCurveSvg } from '../../train/plot.js';
import { formatEta } from '../../train/progress.js';
import { describeAdapter } from '../../backend/webgpu/index.js';
import { LorakitWorker, WorkerError } from '../client.js';
import type { BackendChoice } from '../protocol.js';
import type { LoraSettings } from '../recipe.js';

/** What the server says about itself (GET api/info, src/web/server.node.ts). */
export interface PageInfo {
  model: { name: string; url: string; files: string[] };
  demos: { id: string; title: string; description: string; url: string; prompt: string }[];
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page: no element #${id}`);
  return el as T;
};
const num = (id: string): number => Number($<HTMLInputElement>(id).value);

const status = (text: string, error = false): void => {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', error);
};

let worker: LorakitWorker | undefined;
const live = (): LorakitWorker => {
  if (!worker) throw new Error('the worker has not started yet');
  return worker;
};
let data: { text: string; file: string } | null = null;
let training = false;
let paused = false;
let hasAdapter = false;
let modelReady = false;
const losses: [number, number][] = [];

function refresh(): void {
  $<HTMLButtonElement>('train').disabled = !modelReady || !data || training;
  $<HTMLButtonElement>('pause').disabled = !training;
  $<HTMLButtonElement>('cancel').disabled = !training;
  $<HTMLButtonElement>('generate').disabled = !modelReady || training;
  $<HTMLButtonElement>('download').disabled = !hasAdapter || training;
  $<HTMLSelectElement>('backend-choice').disabled = training || (!modelReady && worker !== undefined);
  $('pause').textContent = paused ? 'Resume' : 'Pause';
}

function drawChart(): void {
  const chart = $('chart');
  chart.innerHTML = lossCurveSvg([{ name: 'train', points: losses }], { title: 'training loss', width: 640, height: 320 });
  chart.dataset['losses'] = JSON.stringify(losses.map(([, l]) => l));
}

async function useData(text: string, file: string, note: string): Promise<void> {
  const lines = text.split('\n').filter((l) => l.trim() !== '').length;
  data = { text, file };
  $('data-info').textContent = `${file}: ${lines} lines${note ? ` · ${note}` : ''}`;
  refresh();
}

function settings(): LoraSettings {
  return {
    rank: num('rank'),
    targets: $<HTMLSelectElement>('targets').value,
    steps: num('steps'),
    lr: num('lr'),
    batchSize: num('batch'),
    maxLength: num('maxlen'),
    seed: num('seed'),
  };
}

async function train(): Promise<void> {
  if (!data) return;
  training = true;
  paused = false;
  losses.length = 0;
  drawChart();
  refresh();
  status('training…');
  const bar = $('bar');
  try {
    const s = await live().train(settings(), data, {
      onProgress: (e) => {
        if (!e.skipped) losses.push([e.step, e.loss]);
        bar.style.width = `${(100 * e.step) / e.totalSteps}%`;
        $('s-step').textContent = `${e.step} / ${e.totalSteps}`;
        $('s-loss').textContent = e.loss.toFixed(4);
        $('s-tps').textContent = e.tokensPerSecond.toFixed(0);
        $('s-eta').textContent = formatEta(e.eta);
        drawChart();
      },
      onState: (st, step) => {
        status(st === 'paused' ? `paused after step ${step}` : 'training…');
        if (st === 'paused') $('chart').dataset['pausedStep'] = String(step);
        else delete $('chart').dataset['pausedStep'];
      },
    });
    hasAdapter = true;
    status(`trained ${s.steps} steps in ${s.seconds.toFixed(1)} s (${s.tokensPerSecond.toFixed(0)} tokens/s): loss ${s.firstLoss.toFixed(3)} → ${s.finalLoss.toFixed(3)} · ${s.trainableParams.toLocaleString('en-US')} trainable parameters on ${s.targets.join(', ')}`);
    $('adapter-info').textContent = `trained here: rank ${num('rank')}, ${s.examples} examples (${s.format}), seed ${num('seed')}`;
  } catch (e) {
    if (e instanceof WorkerError && e.cancelled) status('training cancelled; the adapter was dropped');
    else status(`training failed: ${(e as Error).message}`, true);
    if (e instanceof WorkerError && e.cancelled) hasAdapter = false;
  } finally {
    training = false;
    paused = false;
    refresh();
  }
}

async function generate(): Promise<void> {
  const prompt = $<HTMLTextAreaElement>('prompt').value;
  const maxNewTokens = num('maxnew');
  $<HTMLButtonElement>('generate').disabled = true;
  for (const id of ['out-base', 'out-adapter']) delete $(id).dataset['done'];
  try {
    for (const adapter of hasAdapter ? [false, true] : [false]) {
      const out = $(adapter ? 'out-adapter' : 'out-base');
      out.textContent = '';
      await live().generate(prompt, { adapter, maxNewTokens, onToken: (t) => (out.textContent += t) });
      out.dataset['done'] = '1';
    }
    if (!hasAdapter) $('out-adapter').textContent = '(train or load an adapter first)';
  } catch (e) {
    status(`generation failed: ${(e as Error).message}`, true);
  } finally {
    refresh();
  }
}

async function download(): Promise<void> {
  const zip = await live().adapterZip();
  const url = URL.createObjectURL(new Blob([zip as BlobPart], { type: 'application/zip' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = 'adapter.zip';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function loadAdapter(files: File[]): Promise<void> {
  try {
    const r = await live().loadAdapter(files);
    hasAdapter = true;
    $('adapter-info').textContent = `loaded ${files.map((f) => f.name).join(' + ')}: rank ${r.r}, alpha ${r.alpha}, ${r.targets} modules`;
    status('adapter loaded');
  } catch (e) {
    status(`loading the adapter failed: ${(e as Error).message}`, true);
  }
  refresh();
}

async function main(): Promise<void> {
  refresh();
  const info = (await (await fetch('api/info')).json()) as PageInfo;
  const tasks = $('tasks');
  info.demos.forEach((d, i) => {
    const label = document.createElement('label');
    label.className = 'task';
    label.innerHTML = `<input type="radio" name="task" value="${d.id}"><span><b></b><small></small></span>`;
    label.querySelector('b')!.textContent = d.title;
    label.querySelector('small')!.textContent = d.description;
    const input = label.querySelector('input')!;
    input.addEventListener('change', async () => {
      const text = await (await fetch(d.url)).text();
      $<HTMLTextAreaElement>('prompt').value = d.prompt;
      await useData(text, `${d.id}.jsonl`, d.title);
    });
    tasks.append(label);
    if (i === 0) {
      input.checked = true;
      input.dispatchEvent(new Event('change'));
    }
  });
  $<HTMLInputElement>('upload').addEventListener('change', async (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (!f) return;
    for (const r of document.querySelectorAll<HTMLInputElement>('input[name=task]')) r.checked = false;
    await useData(await f.text(), f.name, 'uploaded');
  });
  $('train').addEventListener('click', () => void train());
  $('pause').addEventListener('click', () => {
    paused = !paused;
    if (paused) live().pause();
    else live().resume();
    status(paused ? 'pausing after the current step…' : 'training…');
    refresh();
  });
  $('cancel').addEventListener('click', () => live().cancel());
  $('generate').addEventListener('click', () => void generate());
  $('download').addEventListener('click', () => void download());
  $<HTMLInputElement>('load-adapter').addEventListener('change', (e) => void loadAdapter([...((e.target as HTMLInputElement).files ?? [])]));

  const choice = $<HTMLSelectElement>('backend-choice');
  choice.addEventListener('change', () => {
    startWorker(choice.value as BackendChoice, info).catch((e: unknown) => status(`error: ${(e as Error).message}`, true));
  });
  await offerWebGpu(choice);
  await startWorker('auto', info);
}

/** Adds WebGPU to the backend choices when this browser has an adapter, named by its description. */
async function offerWebGpu(choice: HTMLSelectElement): Promise<void> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  const adapter = await gpu?.requestAdapter().catch(() => null);
  if (!adapter) return;
  const { description, fallback } = describeAdapter(adapter);
  const option = document.createElement('option');
  option.value = 'webgpu';
  option.textContent = `WebGPU: ${description}${fallback ? ' (a software fallback, slower than the CPU)' : ''}`;
  choice.options[0]!.after(option);
}

/** (Re)starts the worker on a backend and loads the model into it; a trained adapter is dropped with the old worker. */
async function startWorker(backend: BackendChoice, info: PageInfo): Promise<void> {
  modelReady = false;
  hasAdapter = false;
  document.body.dataset['ready'] = '0';
  $('adapter-info').textContent = '';
  refresh();
  worker?.worker.terminate();
  status('starting the worker…');
  worker = await LorakitWorker.start({ url: new URL('worker.js', location.href), backend });
  worker.onLog = (line) => console.info(`[lorakit] ${line}`);
  const b = worker.backend!;
  console.info(`[lorakit] ${b.notice}`);
  $('backend').textContent = `backend: ${b.name}${b.adapter ? ` on ${b.adapter}` : ''} (${b.why}) · cross-origin isolated: ${b.crossOriginIsolated ? 'yes' : 'no'}`;
  status(`loading ${info.model.name}…`);
  const m = await worker.loadModel({ url: info.model.url, names: info.model.files }, info.model.name);
  modelReady = true;
  status(`${m.name}: ${m.modelType}, ${m.layers} layers, hidden ${m.hidden}, ${(m.params / 1e6).toFixed(1)}M parameters (${m.dtype}) on ${b.name} · ready`);
  document.body.dataset['ready'] = '1';
  refresh();
}

main().catch((e: unknown) => status(`error: ${(e as Error).message}`, true));
