import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor } from '../../src/tensor/index.js';
import { FormatError } from '../../src/io/index.js';
import { ShardedSafetensors, readShardIndex, writeSafetensorsSync, writeShardedSafetensors } from '../../src/io/index.node.js';
import { listDir, tmpDir } from '../helpers/io-tmp.js';

function weights(): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  // 4 tensors of 400 bytes (f32 [10, 10]) and one of 1200 bytes.
  for (let i = 0; i < 4; i++) m.set(`model.layers.${i}.mlp.weight`, Tensor.fromValues(Array.from({ length: 100 }, (_, j) => i * 100 + j), [10, 10]));
  m.set('lm_head.weight', Tensor.fromValues(Array.from({ length: 300 }, (_, j) => -j), [30, 10]));
  return m;
}

test('sharded write and read: index layout, shard sizes, every tensor back', async () => {
  const dir = tmpDir();
  const w = weights();
  const written = await writeShardedSafetensors(dir, w, { maxShardBytes: 900, metadata: { format: 'pt' } });
  // Greedy in the given order: [0, 1] (800 B), [2, 3] (800 B), [lm_head] (1200 B, over the limit, alone).
  assert.deepEqual(written.files, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
  assert.equal(written.index, 'model.safetensors.index.json');
  assert.deepEqual(listDir(dir), ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json']);

  const indexJson = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.deepEqual(indexJson.metadata, { total_size: 4 * 400 + 1200 });
  assert.deepEqual(Object.keys(indexJson.weight_map), [...w.keys()].sort());
  assert.equal(indexJson.weight_map['model.layers.2.mlp.weight'], 'model-00002-of-00003.safetensors');
  assert.equal(indexJson.weight_map['lm_head.weight'], 'model-00003-of-00003.safetensors');

  const index = readShardIndex(path.join(dir, 'model.safetensors.index.json'));
  assert.equal(index.weightMap.size, 5);
  const s = ShardedSafetensors.open(path.join(dir, 'model.safetensors.index.json'));
  try {
    assert.deepEqual(s.names(), [...w.keys()].sort());
    for (const [name, t] of w) assert.deepEqual([...s.tensor(name).f32], [...t.f32], name);
    assert.equal(s.info('lm_head.weight').file, path.join(dir, 'model-00003-of-00003.safetensors'));
    assert.deepEqual(s.shards.get('model-00001-of-00003.safetensors')!.metadata, { format: 'pt' });
    const seen = [...s.tensors()].map(([n]) => n);
    assert.deepEqual(seen.sort(), [...w.keys()].sort());
  } finally {
    s.close();
  }

  // Saving again small enough for one file replaces the shards and the index.
  const one = await writeShardedSafetensors(dir, w);
  assert.deepEqual(one, { files: ['model.safetensors'] });
  assert.deepEqual(listDir(dir), ['model.safetensors']);
});

test('sharded read: a missing tensor and a missing shard are reported together, naming tensor and shard', () => {
  const dir = tmpDir();
  writeSafetensorsSync(path.join(dir, 'model-00001-of-00002.safetensors'), { a: Tensor.fromValues([1], [1]) });
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(
    indexFile,
    JSON.stringify({
      metadata: { total_size: 8 },
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' },
    }),
  );
  assert.throws(
    () => ShardedSafetensors.open(indexFile),
    (err: Error) => {
      assert.ok(err instanceof FormatError);
      assert.ok(err.message.includes(indexFile));
      assert.ok(err.message.includes('tensor "b": weight_map says it is in shard model-00001-of-00002.safetensors, but that shard has no such tensor'), err.message);
      assert.ok(err.message.includes('shard model-00002-of-00002.safetensors does not exist (weight_map lists 1 tensors in it, e.g. "c")'), err.message);
      assert.equal(err.problems.length, 2);
      return true;
    },
  );
});

test('sharded read: a corrupt shard and a bad index are errors naming them', () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'model-00001-of-00001.safetensors'), new Uint8Array(3));
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(indexFile, JSON.stringify({ weight_map: { a: 'model-00001-of-00001.safetensors' } }));
  assert.throws(() => ShardedSafetensors.open(indexFile), /shard model-00001-of-00001\.safetensors: file is 3 bytes, shorter than the 8-byte header length/);

  fs.writeFileSync(indexFile, '{"weight_map": ');
  assert.throws(() => readShardIndex(indexFile), (err: Error) => err.message.includes(indexFile) && err.message.includes('not valid JSON'));
  fs.writeFileSync(indexFile, JSON.stringify({ metadata: {}, weight_map: { a: '../../etc/passwd', b: 3 } }));
  assert.throws(
    () => readShardIndex(indexFile),
    (err: Error) => err.message.includes('weight_map["a"] must be a shard file name inside the folder') && err.message.includes('weight_map["b"]'),
  );
  fs.writeFileSync(indexFile, JSON.stringify({ metadata: {} }));
  assert.throws(() => readShardIndex(indexFile), /"weight_map" must be an object \{tensor name: shard file\}, got nothing/);
});
