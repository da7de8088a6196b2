// GEMM benchmark: GFLOP/s of the native gemm on the transformer shapes lorakit runs, the
// share of this machine's fp32 peak, and the same shapes through OpenBLAS (when
// libopenblas-dev is installed) timed by a small C++ program compiled here at run time.
// The two libraries are timed in alternating rounds (see ROUNDS below), so a load change
// on the machine hits both alike. Also prints the per-call cost of a tiny product.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeBackend, nativeError } from '../src/backend/native/select.js';
import type { GemmArgs } from '../src/backend/types.js';
import { f32ToBf16 } from '../src/tensor/half.js';
import { GEMM_SHAPES as SHAPES, type GemmShape as Shape } from './shapes.js';

// Each shape is timed in ROUNDS rounds; a round times lorakit (RUNS runs after a warm-up,
// median) and then, in a fresh process, OpenBLAS the same way. The figures are the medians
// over the rounds, the spread their slowest and fastest, and the ratio the median of the
// per-round ratios: pairing the two libraries round by round keeps the comparison fair
// when other work on the machine comes and goes.
const ROUNDS = 7;
const RUNS = 3;

interface Timing {
  median: number; // seconds per call
  min: number;
  max: number;
}

function stats(times: number[]): Timing {
  const t = [...times].sort((a, b) => a - b);
  return { median: t[Math.floor(t.length / 2)]!, min: t[0]!, max: t[t.length - 1]! };
}

const median = (xs: number[]): number => stats(xs).median;

// Times fn: a warm-up, then RUNS runs of `reps` calls each, reps chosen for ~20 ms a run;
// returns the median seconds per call.
function timeIt(fn: () => void, flops: number): number {
  const reps = Math.max(1, Math.round(2e9 / flops / 100));
  for (let i = 0; i < reps * 2; i++) fn();
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9 / reps);
  }
  return median(times);
}

function randomF32(n: number): Float32Array {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

/** The clock from /proc/cpuinfo ("cpu MHz", first core), in GHz; null when absent. */
function cpuGHz(): number | null {
  try {
    const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Number(m[1]) / 1000 : null;
  } catch {
    return null;
  }
}

function cpuModel(): string {
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? m[1]!.trim() : 'unknown CPU';
  } catch {
    return 'unknown CPU';
  }
}

// ---------- OpenBLAS ----------

// Reads lines "M K N transA transB runs" on stdin, prints "median min max" seconds per
// cblas_sgemm call (row-major, C = op(A)·op(B), f32) over `runs` runs after a warm-up.
const OPENBLAS_TIMER = String.raw`
#include <cblas.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
extern "C" char* openblas_get_corename(void);
extern "C" char* openblas_get_config(void);
extern "C" int openblas_get_num_threads(void);
int main() {
  std::printf("core=%s; threads=%d; config=%s\n", openblas_get_corename(), openblas_get_num_threads(), openblas_get_config());
  std::fflush(stdout);
  long M, K, N, ta, tb, runs;
  while (std::scanf("%ld %ld %ld %ld %ld %ld", &M, &K, &N, &ta, &tb, &runs) == 6) {
    std::vector<float> a(M * K), b(K * N), c(M * N);
    unsigned s = 12345;
    for (auto& x : a) { s = s * 1103515245u + 12345u; x = s / 4294967296.0f - 0.5f; }
    for (auto& x : b) { s = s * 1103515245u + 12345u; x = s / 4294967296.0f - 0.5f; }
    const double flops = 2.0 * M * N * K;
    const long reps = std::max(1L, (long)(2e9 / flops / 100));
    auto call = [&] {
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.f,
                  a.data(), ta ? M : K, b.data(), tb ? K : N, 0.f, c.data(), N);
    };
    for (long i = 0; i < reps * 2; ++i) call();
    std::vector<double> t;
    for (long r = 0; r < runs; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      for (long i = 0; i < reps; ++i) call();
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps);
    }
    std::sort(t.begin(), t.end());
    std::printf("%.9g %.9g %.9g\n", t[t.size() / 2], t.front(), t.back());
    std::fflush(stdout);
  }
}
`;

interface OpenBlas {
  exe: string;
  dir: string;
  env: NodeJS.ProcessEnv;
  info: string;
}

function findCblasHeader(): string | null {
  for (const p of ['/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/openblas/cblas.h', '/usr/include/cblas.h']) if (existsSync(p)) return p;
  return null;
}

function hasLibOpenblas(): boolean {
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  if (r.status === 0 && /libopenblas\.so\b/.test(r.stdout)) return true;
  return ['/usr/lib/x86_64-linux-gnu/libopenblas.so', '/usr/lib/libopenblas.so'].some((p) => existsSync(p));
}

/** Builds the OpenBLAS timer, or says why not. */
function buildOpenBlas(threads: number): OpenBlas | string {
  const header = findCblasHeader();
  if (!header || !hasLibOpenblas()) return 'OpenBLAS not found (install libopenblas-dev for the side-by-side figures)';
  const dir = mkdtempSync(join(tmpdir(), 'lorakit-gemm-bench-'));
  const src = join(dir, 'openblas_timer.cc');
  const exe = join(dir, 'openblas_timer');
  writeFileSync(src, OPENBLAS_TIMER);
  const incDir = header.slice(0, header.lastIndexOf('/'));
  const cc = spawnSync('g++', ['-O2', '-std=c++17', `-I${incDir}`, src, '-o', exe, '-lopenblas'], { encoding: 'utf8' });
  if (cc.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `compiling the OpenBLAS timer failed: ${(cc.stderr || cc.error?.message || '').trim().split('\n').slice(0, 3).join(' ')}`;
  }
  // OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set on this machine for old OpenBLAS
  // builds; they slow a current one, so the timer runs without them.
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  delete env.OMP_NUM_THREADS;
  const probe = spawnSync(exe, [], { env, input: '', encoding: 'utf8' });
  if (probe.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `the OpenBLAS timer did not run: ${probe.stderr || probe.error?.message}`;
  }
  return { exe, dir, env, info: probe.stdout.trim() };
}

/** Median seconds per call of one OpenBLAS round, or null when the run failed. */
function timeOpenBlas(ob: OpenBlas, s: Shape): number | null {
  const r = spawnSync(ob.exe, [], { env: ob.env, input: `${s.M} ${s.K} ${s.N} ${s.transA ? 1 : 0} ${s.transB ? 1 : 0} ${RUNS}\n`, encoding: 'utf8' });
  const line = r.stdout?.trim().split('\n')[1];
  if (r.status !== 0 || !line) return null;
  return Number(line.split(/\s+/)[0]);
}

// ---------- the bench ----------

const gf = (flops: number, sec: number): string => (flops / sec / 1e9).toFixed(1);
const pad = (s: string, n: number): string => s.padEnd(n);

export async function runGemmBench(): Promise<void> {
  const nat = nativeBackend();
  if (!nat) {
    console.log(`gemm bench skipped: the native addon is not available (${nativeError()})`);
    return;
  }
  const threads = nat.threads;
  const cores = availableParallelism();
  const ghz = cpuGHz();
  const peak = ghz ? threads * 2 * 8 * 2 * ghz : null; // threads × 2 FMA units × 8 fp32 lanes × 2 flops × clock
  console.log(`machine: ${cpuModel()}, ${cores} cores; lorakit gemm on ${threads} thread(s), kernels: ${nat.isa}`);
  console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine lowers every figure)`);
  if (peak) {
    console.log(`fp32 peak used for %: ${threads} threads × 2 FMA units × 8 lanes × 2 flops × ${ghz!.toFixed(3)} GHz ("cpu MHz" in /proc/cpuinfo) = ${peak.toFixed(1)} GFLOP/s`);
    console.log('  (the nominal clock: a core that boosts above it can pass 100%)');
  } else {
    console.log('fp32 peak: unknown (no "cpu MHz" in /proc/cpuinfo)');
  }
  const ob = buildOpenBlas(threads);
  if (typeof ob === 'string') console.log(`OpenBLAS: ${ob}; lorakit figures alone`);
  else console.log(`OpenBLAS: OPENBLAS_NUM_THREADS=${threads}, OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset; ${ob.info}`);
  console.log(`each figure: median GFLOP/s over ${ROUNDS} rounds [slowest–fastest round]; a round is the median of ${RUNS} timed runs after a warm-up,`);
  console.log('lorakit then OpenBLAS (f32 sgemm, also for the bf16-B rows); lorakit/OpenBLAS: median [range] of the per-round ratios\n');

  const W = 36;
  console.log(`${pad('shape (M×K · K×N)', W)}${pad('lorakit GFLOP/s', 24)}${pad('% peak', 8)}${typeof ob === 'string' ? '' : `${pad('OpenBLAS GFLOP/s', 24)}lorakit/OpenBLAS`}`);
  try {
    for (const s of SHAPES) {
      const { M, K, N } = s;
      const flops = 2 * M * N * K;
      const a = randomF32(M * K);
      const b32 = randomF32(K * N);
      let b: Float32Array | Uint16Array = b32;
      if (s.bDtype === 'bf16') {
        const h = new Uint16Array(K * N);
        for (let i = 0; i < h.length; i++) h[i] = f32ToBf16(b32[i]!);
        b = h;
      }
      const c = new Float32Array(M * N);
      const args: GemmArgs = { M, N, K, transA: s.transA ?? false, transB: s.transB ?? false, bDtype: s.bDtype ?? 'f32' };
      const ours: number[] = [];
      const theirs: number[] = [];
      const ratios: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const t = timeIt(() => nat.gemm(c, a, b, args), flops);
        ours.push(t);
        if (typeof ob !== 'string') {
          const o = timeOpenBlas(ob, s);
          if (o !== null) {
            theirs.push(o);
            ratios.push(o / t);
          }
        }
      }
      const t = stats(ours);
      let line = `${pad(s.label, W)}${pad(`${gf(flops, t.median)} [${gf(flops, t.max)}–${gf(flops, t.min)}]`, 24)}${pad(peak ? `${((flops / t.median / 1e9 / peak) * 100).toFixed(0)}%` : '-', 8)}`;
      if (typeof ob !== 'string') {
        if (theirs.length === 0) line += 'OpenBLAS run failed';
        else {
          const o = stats(theirs);
          line += `${pad(`${gf(flops, o.median)} [${gf(flops, o.max)}–${gf(flops, o.min)}]`, 24)}${median(ratios).toFixed(2)} [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}]`;
        }
      }
      console.log(line);
    }
  } finally {
    if (typeof ob !== 'string') rmSync(ob.dir, { recursive: true, force: true });
  }

  // per-call cost of a tiny product through the whole JS → addon path
  {
    const M = 32, K = 768, N = 8;
    const a = randomF32(M * K);
    const b = randomF32(K * N);
    const c = new Float32Array(M * N);
    const args: GemmArgs = { M, N, K };
    const calls = 20000;
    for (let i = 0; i < calls; i++) nat.gemm(c, a, b, args);
    const times: number[] = [];
    for (let r = 0; r < 9; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) nat.gemm(c, a, b, args);
      times.push(Number(process.hrtime.bigint() - t0) / 1e3 / calls);
    }
    const t = stats(times);
    console.log(`\ntiny gemm 32×768 · 768×8 from JS: ${t.median.toFixed(2)} µs per call [${t.min.toFixed(2)}–${t.max.toFixed(2)}] (median of 9 runs of ${calls} calls)`);
  }
}
