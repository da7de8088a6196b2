// `npm run bench`: runs every benchmark section in turn, or one with `--only <section>`.
// A section is a name and an async function that prints its own figures. Add new ones to
// the list below. Opt-in sections (minutes long) run only when named: `--only compare`, or
// `--compare-pytorch` (the same as `--only compare`).
import { installNodePlatform } from '../src/platform.node.js';
import { parseCompareArgs, runComparePytorch } from './compare-pytorch.js';
import { runGemmBench } from './gemm.js';
import { runModelBench } from './models.js';
import { runQloraBench } from './qlora.js';
import { runServeBench } from './serve.js';
import { runTrainBench } from './train.js';
import { runWasmGemmBench, runWasmTrainBench } from './wasm.js';

interface Section {
  name: string;
  run: () => Promise<void>;
  /** only when asked for by name */
  optIn?: boolean;
}

await installNodePlatform();

const quick = process.argv.includes('--quick');
// --backend wasm: the gemm and train sections time the wasm backend next to the native one
const backendArg = process.argv.indexOf('--backend');
const backend = backendArg >= 0 ? process.argv[backendArg + 1] : undefined;
if (backend !== undefined && backend !== 'wasm' && backend !== 'native') throw new Error(`--backend must be native or wasm (got "${backend}")`);
const withWasm = backend === 'wasm';

const sections: Section[] = [
  { name: 'gemm', run: withWasm ? runWasmGemmBench : runGemmBench },
  { name: 'models', run: async () => void (await runModelBench({ quick })) },
  { name: 'train', run: async () => void (withWasm ? await runWasmTrainBench({ quick }) : await runTrainBench({ quick })) },
  { name: 'serve', run: async () => void (await runServeBench({ quick })) },
  // QLoRA (issue 23): f32, bf16, q4_0, q4_k bases side by side; minutes, and ~4.5 GB of GGUF files in $TMPDIR; --quick, --steps N
  { name: 'qlora', run: async () => void (await runQloraBench({ quick, ...stepsArg() })), optIn: true },
  // --quick, --steps N, --rounds N, --models llama,gpt2
  { name: 'compare', run: async () => void (await runComparePytorch(parseCompareArgs(process.argv.slice(2)))), optIn: true },
];

function stepsArg(): { steps?: number } {
  const i = process.argv.indexOf('--steps');
  return i >= 0 ? { steps: Number(process.argv[i + 1]) } : {};
}

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
