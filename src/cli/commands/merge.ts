// lorakit merge: W += s·B·A for an adapter, written as a plain Hugging Face model folder
// (config.json, model.safetensors, tokenizer files, generation_config.json).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { copyModelSideFiles } from '../../io/model-files.node.js';
import { saveModel } from '../../models/load.node.js';
import { floatDTypeOf, type DType } from '../../tensor/tensor.js';
import { UsageError, bytes, checkOutput, collect, commas, parseChoice, required } from '../common.js';
import { attachAdapters, openModel, parseAdapterSpecs } from '../load.js';

const DTYPES = ['keep', 'f32', 'bf16', 'f16'] as const;
type MergeDType = (typeof DTYPES)[number];

interface MergeFlags {
  config?: string;
  model?: string;
  adapter?: string[];
  adapterName?: string;
  out?: string;
  dtype: MergeDType;
}

export function mergeCommand(): Command {
  return new Command('merge')
    .description('merge an adapter into the base weights and write a Hugging Face model folder')
    .option('--config <file>', 'YAML or JSON file of options (keys are flag names); flags override it')
    .option('--model <dir>', 'base model folder')
    .option('--adapter <dir>', 'PEFT adapter folder (or name=DIR; repeat with --adapter-name to merge several, summed)', collect)
    .option('--adapter-name <names>', 'adapter(s) to merge, comma-separated (default: the first --adapter)')
    .option('--out <dir>', 'the merged model folder')
    .addOption(new Option('--dtype <dtype>', 'dtype of the saved weights (keep: as the base)').choices(DTYPES).default('keep').argParser(parseChoice(DTYPES)))
    .action(async function (this: Command) {
      await runMerge(this.opts<MergeFlags>());
    });
}

async function runMerge(o: MergeFlags): Promise<void> {
  const modelDir = required(o.model, '--model DIR');
  const outDir = required(o.out, '--out DIR');
  const specs = parseAdapterSpecs(o.adapter);
  if (specs.length === 0) throw new UsageError('missing --adapter DIR (give the flag, or set it in the --config file)');
  checkOutput('--out', outDir, [{ flag: '--model', path: modelDir }, ...specs.map((s) => ({ flag: '--adapter', path: s.dir }))]);
  if (existsSync(outDir) && readdirSync(outDir).some((f) => f.endsWith('.safetensors')) && existsSync(join(outDir, 'model.safetensors.index.json'))) {
    throw new UsageError(`--out ${outDir} holds a sharded model already; choose an empty folder`);
  }
  // merging into half weights rounds W + s·B·A to half; --dtype f32 merges in f32 instead
  const loaded = openModel(modelDir, { f32: o.dtype === 'f32' });
  const names = o.adapterName?.split(',').map((s) => s.trim()).filter((s) => s);
  const peft = attachAdapters(loaded, specs, names)!;
  const before = loaded.model.parameters()[0]!.value.dtype;
  const quantized = [...new Set(loaded.model.parameters().filter((p) => p.value.quantized).map((p) => p.value.dtype))];
  try {
    peft.mergeAndUnload({ safeMerge: true });
  } catch (e) {
    throw new Error(`merge of ${specs.map((s) => s.dir).join(', ')} into ${modelDir} failed: ${(e as Error).message.split('\n')[0]}`);
  }
  // a quantized base (GGUF) is merged in f32 (lora/merge.ts) and saved so: safetensors holds no blocks
  const dtype: DType = o.dtype === 'keep' ? (quantized.length ? 'f32' : floatDTypeOf(before)) : o.dtype;
  if (quantized.length) console.log(`note: the base holds quantized weights (${quantized.join(', ')}): they were dequantized to merge, and the merged model is saved as ${dtype} safetensors (for a quantized file: lorakit export --format gguf --type q4_0)`);
  await saveModel(loaded.model, outDir, { dtype });
  const copied = copyModelSideFiles(modelDir, outDir);
  const params = loaded.model.parameters().reduce((n, p) => n + p.value.size, 0);
  const files = readdirSync(outDir).filter((f) => f.endsWith('.safetensors'));
  const size = files.reduce((n, f) => n + statSync(join(outDir, f)).size, 0);
  console.log(`merged ${specs.map((s) => s.dir).join(' + ')} into ${modelDir}`);
  console.log(`wrote ${outDir}: config.json, ${files.join(', ')} (${commas(params)} params, ${dtype}, ${bytes(size)})${copied.length ? `, ${copied.join(', ')}` : ''}`);
}

