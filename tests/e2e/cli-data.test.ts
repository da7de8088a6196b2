import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CHATML_TEMPLATE, writeByteLevelBpeTokenizer } from '../helpers/tokenizers.js';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'lorakit.js');
const tmp = mkdtempSync(join(tmpdir(), 'lorakit-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function lorakit(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('lorakit data check', () => {
  const model = join(tmp, 'model');
  writeByteLevelBpeTokenizer(model, { chatTemplate: CHATML_TEMPLATE });

  it('reports every bad line with file:line, the statistics, and exits 1', () => {
    const file = join(tmp, 'd.jsonl');
    writeFileSync(file, '{"text":"hello world"}\n{"txt":"x"}\nnot json\n{"text":"the cafe"}\n');
    const r = lorakit('data', 'check', file, '--model', model);
    assert.equal(r.status, 1);
    assert.match(r.stdout, new RegExp(`${file}:2: missing field "text"`));
    assert.match(r.stdout, new RegExp(`${file}:3: invalid JSON`));
    assert.match(r.stdout, /format text, 2 examples, 13 tokens/);
    assert.match(r.stdout, /lengths: min 6, mean 6\.5, median 6\.5, p95 7, max 7/);
    assert.match(r.stdout, /2 problem\(s\)/);
  });

  it('passes a clean file', () => {
    const file = join(tmp, 'ok.jsonl');
    writeFileSync(file, '{"prompt":"hello","completion":" world"}\n');
    const r = lorakit('data', 'check', file, '--model', model);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /no problems/);
  });

  it('gives one clear line and a non-zero exit for wrong paths and unknown flags', () => {
    const missing = lorakit('data', 'check', join(tmp, 'nope.jsonl'), '--model', model);
    assert.equal(missing.status, 2);
    assert.equal(missing.stderr.trim(), `lorakit: data file ${join(tmp, 'nope.jsonl')} does not exist`);
    const flag = lorakit('data', 'check', join(tmp, 'ok.jsonl'), '--model', model, '--frobnicate');
    assert.notEqual(flag.status, 0);
    assert.match(flag.stderr, /unknown option '--frobnicate'/);
    assert.doesNotMatch(flag.stderr + missing.stderr, /\n\s+at /);
  });
});
