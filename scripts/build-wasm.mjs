// Builds the WebAssembly kernel module (native/wasm/) from the native kernel sources with
// emscripten: `npm run build:wasm`. The built files are committed, so installing lorakit
// needs no emscripten; CI rebuilds them (.ci/run) and runs the tests on the rebuilt module.
// docs/ARCHITECTURE.md §Platforms and entry points (the wasm backend).
//
// Two binaries share one JavaScript glue: lorakit.wasm (SIMD128) and lorakit-relaxed.wasm
// (SIMD128 with the relaxed multiply-add, one rounding where the CPU has FMA). The loader
// takes the relaxed one where the engine validates it. clang 14 (Debian's emscripten 3.1.6)
// emits the relaxed multiply-add with its pre-standard opcode (0xfd 0xaf 0x01); this script
// rewrites it in the code section to the standard f32x4.relaxed_madd (0xfd 0x85 0x02).
//
// Needs em++ (Debian: apt-get install emscripten; it needs NODE_PATH=/usr/share/nodejs).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'native', 'wasm');
const src = ['cpu', 'threadpool', 'gemm', 'gemm_simd', 'gemv', 'napi_gemm', 'ops', 'ops_attention', 'ops_rows', 'conv', 'shim_module'].map((f) =>
  join(root, 'native', 'src', `${f}.cc`),
);
const env = { ...process.env };
if (!env.NODE_PATH && existsSync('/usr/share/nodejs')) env.NODE_PATH = '/usr/share/nodejs';
if (!env.EM_CACHE) {
  // emscripten's cache under /usr/share is only writable by root
  try {
    accessSync('/usr/share/emscripten/cache', constants.W_OK);
  } catch {
    env.EM_CACHE = join(homedir(), '.cache', 'lorakit-emscripten');
  }
}

const which = spawnSync('em++', ['--version'], { env, encoding: 'utf8' });
if (which.status !== 0) {
  console.error('build-wasm: em++ not found (Debian/Ubuntu: apt-get install emscripten)');
  process.exit(1);
}

const compile = ['-O3', '-std=c++17', '-msimd128', '-pthread', '-DLK_NAPI_SHIM', '-fno-exceptions', '-Wall', '-Wno-unused-parameter'];
const link = [
  '-s', 'MODULARIZE=1',
  '-s', 'EXPORT_NAME=createLorakitWasm',
  '-s', 'ALLOW_MEMORY_GROWTH=1', // a shared memory: growing it leaves old views valid
  '-s', 'INITIAL_MEMORY=64MB',
  '-s', 'MAXIMUM_MEMORY=4GB',
  '-s', 'PTHREAD_POOL_SIZE=Module["lkPoolSize"]', // workers started with the module (the loader says how many)
  '-s', 'EXPORTED_FUNCTIONS=_malloc,_free',
  '-s', 'NODEJS_CATCH_EXIT=0',
  '-s', 'NODEJS_CATCH_REJECTION=0',
  '-s', 'ENVIRONMENT=node,web,worker',
  '-Wno-pthreads-mem-growth',
];

function build(name, extra) {
  const dir = join(tmpdir(), `lorakit-wasm-${process.pid}-${name}`);
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('em++', [...compile, ...extra, ...src, '-o', join(dir, 'lorakit.js'), ...link], { env, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`build-wasm: em++ failed for ${name} (status ${r.status ?? r.signal})`);
    process.exit(1);
  }
  return dir;
}

/** the [start, end) of the code section (id 10) of a wasm binary */
function codeSection(b) {
  let i = 8;
  const leb = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const byte = b[i++];
      v += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) return v;
      shift += 7;
    }
  };
  while (i < b.length) {
    const id = b[i++];
    const size = leb();
    if (id === 10) return [i, i + size];
    i += size;
  }
  throw new Error('build-wasm: no code section');
}

const OLD = [0xfd, 0xaf, 0x01];
function sites(b) {
  const [s, e] = codeSection(b);
  const at = [];
  for (let i = s; i + 2 < e; i++) if (b[i] === OLD[0] && b[i + 1] === OLD[1] && b[i + 2] === OLD[2]) at.push(i);
  return at;
}

const plainDir = build('simd128', []);
const relaxedDir = build('relaxed', ['-mrelaxed-simd']);
const glue = readFileSync(join(plainDir, 'lorakit.js'), 'utf8');
if (glue !== readFileSync(join(relaxedDir, 'lorakit.js'), 'utf8')) {
  console.error('build-wasm: the two builds produced different JavaScript glue; they must share one');
  process.exit(1);
}
const plain = readFileSync(join(plainDir, 'lorakit.wasm'));
if (sites(plain).length !== 0) {
  // the byte pattern occurs in code without relaxed instructions: the rewrite below would not be safe
  console.error('build-wasm: the SIMD128 build contains the bytes of the old relaxed opcode; cannot rewrite safely');
  process.exit(1);
}
const relaxed = readFileSync(join(relaxedDir, 'lorakit.wasm'));
const at = sites(relaxed);
for (const i of at) {
  relaxed[i + 1] = 0x85;
  relaxed[i + 2] = 0x02;
}
mkdirSync(outDir, { recursive: true });
const put = (name, data) => {
  const tmp = join(outDir, `.${name}.tmp`);
  writeFileSync(tmp, data);
  renameSync(tmp, join(outDir, name));
};
put('lorakit.js', glue);
put('lorakit.worker.js', readFileSync(join(plainDir, 'lorakit.worker.js')));
put('lorakit.wasm', plain);
put('lorakit-relaxed.wasm', relaxed);
put('package.json', '{ "type": "commonjs" }\n'); // the glue is CommonJS; the package is "type": "module"
rmSync(plainDir, { recursive: true, force: true });
rmSync(relaxedDir, { recursive: true, force: true });
console.log(`build-wasm: wrote native/wasm (SIMD128 ${plain.length} bytes; relaxed ${relaxed.length} bytes, ${at.length} multiply-adds rewritten to the standard opcode)`);
