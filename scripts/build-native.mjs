// Builds the native addon with node-gyp during `npm install`. A failed build is not fatal:
// lorakit then runs on the plain TypeScript backend and says so when it starts. Set
// LORAKIT_REQUIRE_NATIVE=1 to make a failed build fail the install instead.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const force = process.argv.includes('--force');
const require = createRequire(import.meta.url);

function findNodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  const candidates = [];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {}
  const npmDir = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm');
  candidates.push(join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push('/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  candidates.push('/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  return candidates.find((c) => existsSync(c));
}

const addon = join(root, 'build', 'Release', 'lorakit.node');
if (!force && process.env.LORAKIT_SKIP_NATIVE === '1') {
  console.log('lorakit: LORAKIT_SKIP_NATIVE=1, not building the native addon');
  process.exit(0);
}
const gyp = findNodeGyp();
let ok = false;
let why = '';
if (!gyp) {
  why = 'node-gyp was not found (it ships with npm)';
} else {
  const args = [gyp, 'rebuild', '--release', `--jobs=${process.env.LORAKIT_BUILD_JOBS ?? 'max'}`];
  // Build against the headers installed beside this Node.js when npm has not said where
  // they are: nothing is downloaded.
  const localNodeDir = join(dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && existsSync(join(localNodeDir, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${localNodeDir}`);
  }
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  ok = r.status === 0 && existsSync(addon);
  if (!ok) why = `node-gyp exited with status ${r.status ?? r.signal}`;
}
if (!ok) {
  const msg = `lorakit: the native addon did not build (${why}). lorakit will run on the slow TypeScript backend. Install g++, make and python3, then run \`npm run build:native\`.`;
  if (process.env.LORAKIT_REQUIRE_NATIVE === '1') {
    console.error(msg);
    process.exit(1);
  }
  console.warn(msg);
}
