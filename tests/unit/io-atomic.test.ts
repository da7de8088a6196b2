import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeDirAtomic, writeFileAtomic, writeFileAtomicSync } from '../../src/io/index.node.js';
import { listDir, tmpDir } from '../helpers/io-tmp.js';

const atomicModule = fileURLToPath(new URL('../../src/io/atomic.node.js', import.meta.url));

test('writeFileAtomic writes and replaces a file, leaving no temp file', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'a.json');
  await writeFileAtomic(file, '{"v": 1}');
  assert.equal(fs.readFileSync(file, 'utf8'), '{"v": 1}');
  await writeFileAtomic(file, [new Uint8Array([1, 2]), new Uint8Array([3])]);
  assert.deepEqual([...fs.readFileSync(file)], [1, 2, 3]);
  writeFileAtomicSync(file, new Uint8Array([9]));
  assert.deepEqual([...fs.readFileSync(file)], [9]);
  async function* gen(): AsyncGenerator<Uint8Array> {
    yield Buffer.from('x');
    yield Buffer.from('y');
  }
  await writeFileAtomic(file, gen());
  assert.equal(fs.readFileSync(file, 'utf8'), 'xy');
  assert.deepEqual(listDir(dir), ['a.json']);
});

test('writeFileAtomic: a write that throws mid-way leaves the old file intact and no temp file', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'model.safetensors');
  fs.writeFileSync(file, 'old and good');
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(1 << 20);
    yield new Uint8Array(1 << 20);
    throw new Error('disk on fire');
  }
  await assert.rejects(writeFileAtomic(file, failing()), /disk on fire/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'old and good');
  assert.deepEqual(listDir(dir), ['model.safetensors']);

  function* failingSync(): Generator<Uint8Array> {
    yield new Uint8Array(100);
    throw new Error('sync failure');
  }
  assert.throws(() => writeFileAtomicSync(file, failingSync()), /sync failure/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'old and good');
  assert.deepEqual(listDir(dir), ['model.safetensors']);

  // A bad chunk is a clear error, also without damage.
  await assert.rejects(writeFileAtomic(file, ['not bytes' as unknown as Uint8Array]), /every chunk must be a Uint8Array, got string/);
  assert.deepEqual(listDir(dir), ['model.safetensors']);
});

test('writeFileAtomic: a writer killed with SIGKILL mid-write never leaves a half file as the target', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'big.bin');
  fs.writeFileSync(file, 'the old complete file');
  // The child writes 1 MiB chunks slowly (up to 256 MiB) so it is surely killed while writing.
  const script = `
    import { writeFileAtomic } from ${JSON.stringify(atomicModule)};
    import { setTimeout as sleep } from 'node:timers/promises';
    async function* chunks() {
      for (let i = 0; i < 256; i++) { yield new Uint8Array(1 << 20).fill(i); await sleep(20); }
    }
    await writeFileAtomic(${JSON.stringify(file)}, chunks());
    console.log('finished');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  // Wait until the temp file holds a few MiB, then kill.
  let temp: string | undefined;
  for (let i = 0; i < 500 && temp === undefined; i++) {
    await sleep(20);
    temp = listDir(dir).find((f) => f !== 'big.bin' && fs.statSync(path.join(dir, f)).size >= 3 << 20);
  }
  assert.ok(temp, 'the child should have started writing a temp file');
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  assert.equal(out, '', 'the child must not have finished');
  assert.equal(fs.readFileSync(file, 'utf8'), 'the old complete file');
  // The leftover is a hidden temp file next to the target, never the target itself.
  const left = listDir(dir).filter((f) => f !== 'big.bin');
  assert.equal(left.length, 1);
  assert.match(left[0]!, /^\.big\.bin\.tmp-\d+-[0-9a-f]+$/);
});

test('writeDirAtomic writes a folder, replaces an old one whole, and keeps the old one on failure', async () => {
  const root = tmpDir();
  const dir = path.join(root, 'adapter');
  await writeDirAtomic(dir, { 'adapter_config.json': '{"r": 8}', 'sub/notes.txt': 'hi' });
  assert.deepEqual(listDir(root), ['adapter']);
  assert.deepEqual(listDir(dir), ['adapter_config.json', 'sub']);
  assert.equal(fs.readFileSync(path.join(dir, 'sub/notes.txt'), 'utf8'), 'hi');

  await writeDirAtomic(dir, new Map([['adapter_model.safetensors', new Uint8Array([1, 2, 3])]]));
  assert.deepEqual(listDir(dir), ['adapter_model.safetensors'], 'the old files are gone: the folder is exactly the new set');
  assert.deepEqual(listDir(root), ['adapter']);

  async function* failing(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(10);
    throw new Error('interrupted');
  }
  await assert.rejects(writeDirAtomic(dir, { 'a.json': '{}', 'b.bin': failing() }), /interrupted/);
  assert.deepEqual(listDir(root), ['adapter'], 'no temp folder is left');
  assert.deepEqual(listDir(dir), ['adapter_model.safetensors']);
  assert.deepEqual([...fs.readFileSync(path.join(dir, 'adapter_model.safetensors'))], [1, 2, 3]);

  await assert.rejects(writeDirAtomic(dir, { '../escape.txt': 'x' }), /must be a relative path inside the folder/);
  assert.deepEqual(listDir(root), ['adapter']);
});
