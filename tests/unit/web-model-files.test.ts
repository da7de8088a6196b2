// Models from picked files and URLs (src/web/model-files.ts, io/memory-weights.ts), in Node:
// the bundled model as one file and as two shards gives the parameters loadModel reads from
// the folder; a missing file or shard is named; adapters round-trip through a zip (web/zip.ts).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { BUNDLED_MODEL_DIR } from '../../src/demo/demo.js';
import { deserializeSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { getPeftModel } from '../../src/lora/peft-model.js';
import { loadModel } from '../../src/models/load.node.js';
import { loadModelFiles } from '../../src/web/model-files.js';
import { adapterBytes } from '../../src/web/recipe.js';
import { adapterSource, unzipFiles, zipAdapter } from '../../src/web/zip.js';
import { loadAdapterFiles } from '../../src/lora/files.js';
import { PeftModel } from '../../src/lora/peft-model.js';

const file = (name: string, bytes?: Uint8Array): File => new File([(bytes ?? fs.readFileSync(path.join(BUNDLED_MODEL_DIR, name))) as Uint8Array<ArrayBuffer>], name);
const SIDE = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];

function sameParameters(a: ReturnType<typeof loadModel>, b: ReturnType<typeof loadModel>): void {
  const pb = new Map(b.namedParameters());
  for (const [name, p] of a.namedParameters()) {
    const q = pb.get(name)!;
    assert.equal(q.value.dtype, p.value.dtype, name);
    assert.deepEqual(q.value.data, p.value.data, name);
  }
}

describe('web: models from picked files', () => {
  const folder = loadModel(BUNDLED_MODEL_DIR);

  it('one model.safetensors', async () => {
    const m = await loadModelFiles({ files: [...SIDE, 'model.safetensors'].map((n) => file(n)) });
    sameParameters(m.model, folder);
    assert.equal(m.tokenizer.encode('The cat sat').length > 0, true);
  });

  it('two shards and their index', async () => {
    const all = deserializeSafetensors(fs.readFileSync(path.join(BUNDLED_MODEL_DIR, 'model.safetensors'))).tensors;
    const names = [...all.keys()].sort();
    const half = Math.ceil(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)].map((list, i) => ({ name: `model-0000${i + 1}-of-00002.safetensors`, list }));
    const index = { metadata: {}, weight_map: Object.fromEntries(shards.flatMap((s) => s.list.map((n) => [n, s.name]))) };
    const shardFiles = shards.map((s) => file(s.name, serializeSafetensors(new Map(s.list.map((n) => [n, all.get(n)!])))));
    const indexFile = file('model.safetensors.index.json', new TextEncoder().encode(JSON.stringify(index)));
    const m = await loadModelFiles({ files: [...SIDE.map((n) => file(n)), indexFile, ...shardFiles] });
    sameParameters(m.model, folder);
    await assert.rejects(loadModelFiles({ files: [...SIDE.map((n) => file(n)), indexFile, shardFiles[0]!] }), /lacks model-00002-of-00002\.safetensors/);
  });

  it('names every missing file', async () => {
    await assert.rejects(loadModelFiles({ files: [file('tokenizer.json')] }), /lacks config\.json, model\.safetensors \(or model\.safetensors\.index\.json with its shards\)/);
  });

  it('an adapter survives a zip and loads back', async () => {
    const peft = getPeftModel(loadModel(BUNDLED_MODEL_DIR), { r: 2, lora_alpha: 4, target_modules: ['q_proj'] }, 'default', { seed: 5 });
    for (const [, l] of peft.loraLayers) (l.adapter('default').B.value.data as Float32Array).fill(0.25);
    const files = await adapterBytes(peft, 'brown-llama');
    const back = unzipFiles(zipAdapter(files));
    assert.deepEqual([...back.keys()].sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    const target = new PeftModel(loadModel(BUNDLED_MODEL_DIR));
    loadAdapterFiles(target, adapterSource(new Map([['adapter.zip', zipAdapter(files)]]), 'adapter.zip'), 'default');
    assert.deepEqual((await adapterBytes(target, 'brown-llama')).get('adapter_model.safetensors'), files.get('adapter_model.safetensors'));
    assert.throws(() => adapterSource(new Map([['adapter_config.json', files.get('adapter_config.json')!]]), 'picked'), /missing adapter_model\.safetensors/);
  });
});
