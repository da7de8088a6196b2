// Runs the compiled test files with Node's built-in test runner.
// Usage: node scripts/run-tests.mjs [substring filters…]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const dirs = ['dist/tests/unit', 'dist/tests/parity', 'dist/tests/e2e', 'dist/examples'];
const filters = process.argv.slice(2);
const files = [];
function walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries.sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (e.endsWith('.test.js') && (filters.length === 0 || filters.some((f) => p.includes(f)))) files.push(p);
  }
}
dirs.forEach(walk);
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
// the test runner is a Node entry point: it installs lorakit's Node platform in every test file
const r = spawnSync(process.execPath, ['--import', './dist/tests/helpers/node-platform.js', '--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
