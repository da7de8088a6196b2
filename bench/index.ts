// `npm run bench`: runs every benchmark section in turn, or one with `--only <section>`.
// A section is a name and an async function that prints its own figures. Add new ones to
// the list below. Opt-in sections (minutes long) run only when named: `--only compare`, or
// `--compare-pytorch` (the same as `--only compare`).
import { installNodePlatform } from '../src/platform.node.js';
import { parseCompareArgs, runComparePytorch } from './compare-pytorch.js';
import { runBrowserTrainBench } from './browser.js';
import { parseGenerateArgs, runGenerateBench } from './generate.js';
import { runGemmBench } from './gemm.js';
import { runModelBench } from './models.js';
import { runQloraBench } from './qlora.js';
import { runServeBench } from './serve.js';
import { runTrainBench } from './train.js';
import { runWasmGemmBench, runWasmTrainBench } from './wasm.js';
import { runWebGpuTrainBench } from './webgpu.js';

interface Section {
  name: string;
  run: () => Promise<void>;
  /** only when asked for by name */
  optIn?: boolean;
}

await installNodePlatform();

const quick = process.argv.includes('--quick');
// --backend wasm: the gemm and train sections time the wasm backend next to the native one;
// --backend webgpu --browser: the train section times WebGPU in Chromium next to native (bench/webgpu.ts)
const backendArg = process.argv.indexOf('--backend');
const backend = backendArg >= 0 ? process.argv[backendArg + 1] : undefined;
if (backend !== undefined && backend !== 'wasm' && backend !== 'native' && backend !== 'webgpu') throw new Error(`--backend must be native, wasm or webgpu (got "${backend}")`);
const withWasm = backend === 'wasm';
const withWebGpu = backend === 'webgpu';
if (withWebGpu && !process.argv.includes('--browser')) throw new Error('--backend webgpu runs in Chromium: add --browser (Node has no WebGPU)');
// --browser (train): the page's training in Chromium next to Node's native and --backend runs (bench/browser.ts)
const browser = process.argv.includes('--browser');
/** --steps N: --browser's steps (default 8, ≥ 2: the first is not timed), --backend wasm's timed train steps (default 3), qlora's steps */
function stepsArg(min: number): { steps?: number } {
  const i = process.argv.indexOf('--steps');
  if (i < 0) return {};
  const n = Number(process.argv[i + 1]);
  if (!(Number.isInteger(n) && n >= min)) throw new Error(`--steps needs a whole number ≥ ${min} (got "${process.argv[i + 1] ?? ''}")`);
  return { steps: n };
}

const sections: Section[] = [
  { name: 'gemm', run: withWasm ? runWasmGemmBench : runGemmBench },
  { name: 'models', run: async () => void (await runModelBench({ quick })) },
  {
    name: 'train',
    run: async () => {
      if (withWebGpu) await runWebGpuTrainBench({ quick });
      else if (browser) {
        await runBrowserTrainBench({ ...(backend ? { backend } : {}), ...stepsArg(2) });
      }
      else if (withWasm) await runWasmTrainBench({ quick, ...stepsArg(1) });
      else await runTrainBench({ quick });
    },
  },
  // lorakit next to llama.cpp (node-llama-cpp in tests/llama-cpp): --rounds N, --threads N, --types f32,bf16,f16,q8_0
  { name: 'generate', run: async () => runGenerateBench(parseGenerateArgs(process.argv.slice(2))), optIn: true },
  { name: 'serve', run: async () => void (await runServeBench({ quick })) },
  // QLoRA (issue 23): f32, bf16, q4_0, q4_k bases side by side; minutes, and ~6.4 GB of GGUF files in $TMPDIR, 3.6 GB of RAM for the f32 run; --quick, --steps N
  { name: 'qlora', run: async () => void (await runQloraBench({ quick, ...stepsArg(1) })), optIn: true },
  // --quick, --steps N, --rounds N, --models llama,gpt2
  { name: 'compare', run: async () => void (await runComparePytorch(parseCompareArgs(process.argv.slice(2)))), optIn: true },
];

function parseOnly(argv: string[]): string | null {
  if (argv.includes('--compare-pytorch')) return 'compare';
  const i = argv.indexOf('--only');
  if (i < 0) return null;
  const name = argv[i + 1];
  if (!name) throw new Error(`--only needs a section name (one of: ${sections.map((s) => s.name).join(', ')})`);
  return name;
}

async function main(): Promise<void> {
  const only = parseOnly(process.argv.slice(2));
  const chosen = only ? sections.filter((s) => s.name === only) : sections.filter((s) => !s.optIn);
  if (chosen.length === 0) throw new Error(`unknown section "${only}" (sections: ${sections.map((s) => s.name).join(', ')})`);
  for (const s of chosen) {
    console.log(`\n=== ${s.name} ===`);
    await s.run();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
