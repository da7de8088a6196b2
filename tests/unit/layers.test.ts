// The layering (docs/ARCHITECTURE.md §Layers) held by a tool: dependency-cruiser checks src/
// against .dependency-cruiser.cjs (each layer's allowed imports, no Node in the core, the
// entry points, no circles) and must find no violation.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

it('dependency-cruiser finds no layering violation and no import circle in src/', () => {
  const bin = path.join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
  const r = spawnSync(process.execPath, [bin, '--config', '.dependency-cruiser.cjs', '--output-type', 'err', 'src'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /no dependency violations found \((\d{3,}) modules/);
});
