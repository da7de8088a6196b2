// lorakit export: a model folder (base or merged) as a GGUF model, or a PEFT adapter as a GGUF
// LoRA adapter, for llama.cpp, Ollama, LM Studio and node-llama-cpp. docs/ARCHITECTURE.md §GGUF.
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { JsonObject } from '../../io/json.js';
import { writeGguf } from '../../io/gguf.node.js';
import { readTokenizerFiles } from '../../io/tokenizer.node.js';
import { GGUF_EXPORT_TYPES, adapterToGguf, modelToGguf, type GgufExportType, type LoraPair } from '../../models/gguf.js';
import { UsageError, bytes, parseChoice, required } from '../common.js';
import { attachAdapters, openModel, parseAdapterSpecs } from '../load.js';

const FORMATS = ['gguf'] as const;
const ADAPTER_TYPES = ['f32', 'f16', 'bf16', 'q8_0'] as const;

interface ExportFlags {
  config?: string;
  model?: string;
  adapter?: string;
  format: (typeof FORMATS)[number];
  type?: GgufExportType;
  out?: string;
  name?: string;
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write a model folder as a GGUF model, or a PEFT adapter as a GGUF LoRA adapter (llama.cpp, Ollama)')
    .option('--config <file>', 'YAML or JSON file of options (keys are flag names); flags override it')
    .option('--model <dir>', 'model folder (base, or merged with lorakit merge); with --adapter, the adapter\'s base model')
    .option('--adapter <dir>', 'PEFT adapter folder: export the adapter alone, as a GGUF LoRA adapter')
    .addOption(new Option('--format <format>', 'output format').choices(FORMATS).default('gguf').argParser(parseChoice(FORMATS)))
    .addOption(new Option('--type <type>', 'weight type (model: f32, f16, bf16, q8_0, q4_0, q4_k; adapter: f32, f16, bf16, q8_0); default f16 for a model, f32 for an adapter').choices(GGUF_EXPORT_TYPES).argParser(parseChoice(GGUF_EXPORT_TYPES)))
    .option('--out <file>', 'the .gguf file to write')
    .option('--name <name>', 'general.name in the file (default: the folder name)')
    .action(async function (this: Command) {
      await runExport(this.opts<ExportFlags>());
    });
}

async function runExport(o: ExportFlags): Promise<void> {
  const modelDir = required(o.model, '--model DIR');
  const out = required(o.out, '--out FILE');
  for (const p of [modelDir, o.adapter]) if (p !== undefined && resolve(p) === resolve(out)) throw new UsageError(`--out ${out} is an input; choose another file`);
  const name = o.name ?? (o.adapter ?? modelDir).replace(/[\\/]+$/, '').split(/[\\/]/).pop()!;
  if (o.adapter !== undefined) {
    const type = o.type ?? 'f32';
    if (!(ADAPTER_TYPES as readonly string[]).includes(type)) throw new UsageError(`--type ${type} is not an adapter type (one of ${ADAPTER_TYPES.join(', ')})`);
    const loaded = openModel(modelDir, { tokenizer: false });
    const peft = attachAdapters(loaded, parseAdapterSpecs([o.adapter]))!;
    const cfg = peft.config('default');
    const problems: string[] = [];
    if (cfg.use_dora) problems.push('DoRA adapters have no llama.cpp form (merge it with lorakit merge, then export the model)');
    if (cfg.modules_to_save?.length) problems.push(`modules_to_save (${cfg.modules_to_save!.join(', ')}) have no llama.cpp adapter form (merge it with lorakit merge, then export the model)`);
    if (cfg.bias !== 'none' || cfg.lora_bias) problems.push('adapters with trained biases have no llama.cpp adapter form (merge it with lorakit merge, then export the model)');
    if (problems.length) throw new UsageError(`adapter ${o.adapter} cannot be exported to GGUF: ${problems.join('; ')}`);
    const pairs: LoraPair[] = [];
    for (const [path, l] of peft.loraLayers) {
      if (!l.hasAdapter('default')) continue;
      const a = l.adapter('default');
      if (l.transposed) throw new UsageError(`adapter ${o.adapter}: ${path} is a Conv1D layer (GPT-2), which GGUF export does not cover`);
      pairs.push({ path, A: a.A.value.toF32Array(), B: a.B.value.toF32Array(), r: a.r, inFeatures: l.inFeatures, outFeatures: l.outFeatures, scaling: a.scaling });
    }
    await writeGguf(out, adapterToGguf(loaded.model.config as JsonObject, pairs, { name, type: type as (typeof ADAPTER_TYPES)[number] }));
    console.log(`wrote ${out}: GGUF LoRA adapter, ${pairs.length} layers, ${type} (${bytes(statSync(out).size)})`);
    console.log(`use it with llama.cpp --lora ${out}, or an Ollama Modelfile: FROM <the base model as GGUF> / ADAPTER ${out}`);
    return;
  }
  const type = o.type ?? 'f16';
  const loaded = openModel(modelDir, { tokenizer: false });
  const tokenizer = readTokenizerFiles(modelDir);
  if (!tokenizer) throw new UsageError(`model folder ${modelDir} has no tokenizer.json (GGUF files carry the tokenizer)`);
  const doc = modelToGguf({ config: loaded.model.config as JsonObject, state: loaded.model.stateDict(), tokenizer, type, name });
  await writeGguf(out, doc);
  console.log(`wrote ${out}: GGUF model (${String(loaded.model.config['model_type'])}, ${type}, ${doc.tensors.length} tensors, ${bytes(statSync(out).size)})`);
}
