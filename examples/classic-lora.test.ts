// The classic example trains: the loss falls every epoch, only A and B are trained, and the
// frozen 512×512 weight does not change by a single bit. Also runs the compiled script.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { runClassicLora } from './classic-lora.js';

describe('examples/classic-lora', () => {
  it('the loss falls and the base weight is unchanged', () => {
    const res = runClassicLora();
    assert.deepEqual(res.trainable, ['lora_A.default.weight', 'lora_B.default.weight']);
    assert.equal(res.losses.length, 10);
    for (let i = 1; i < res.losses.length; i++) assert.ok(res.losses[i]! < res.losses[i - 1]!, `epoch ${i}: ${res.losses[i]} ≥ ${res.losses[i - 1]}`);
    assert.ok(res.losses[0]! - res.losses[9]! > 1, `fell by ${res.losses[0]! - res.losses[9]!}`);
    assert.deepEqual(res.weightAfter, res.weightBefore);
  });

  it('runs as a script', () => {
    const script = fileURLToPath(new URL('./classic-lora.js', import.meta.url));
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Epoch 0: Loss=/m);
    assert.match(r.stdout, /^Epoch 9: Loss=/m);
    assert.match(r.stdout, /the frozen weight is unchanged/);
  });
});
