// GEMM: C[M,N] (+)= alpha · op(A)[M,K] · op(B)[K,N], A and B in f32, f16 or bf16.
//
// A GotoBLAS/BLIS-style packed GEMM:
//   for jc in N by NC:
//     for pc in K by KC:
//       pack op(B)[pc:pc+KC, jc:jc+NC] -> Bp   (ceil(NC/NR) panels [KC][NR], shared, in L3;
//                                               double-buffered: packed during the previous step)
//       for ic in M by MC:                     (tasks, taken dynamically by the threads)
//         pack op(A)[ic:ic+MC, pc:pc+KC] -> Ap (ceil(MC/MR) panels [KC][MR], per thread, in L2)
//         for jr in NC by NR: for ir in MC by MR:  micro-kernel on one MR×NR tile of C
//                                                  (one Bp panel [KC][NR] stays in L1)
// Half operands are widened to f32 while packing, so half weights are read in place; a
// quantized B (GGML blocks, quant.h) is dequantized while packing the same way.
// Small and thin products with an f32 A skip packing A (the "direct" path): A is read
// as stored, and B is packed only when it has to be (half, transposed, or N % 8 != 0).
// The instruction set is chosen at run time on x86: AVX-512F for the packed path's
// micro-kernel (12×32, gemm_avx2.cc; the direct path stays AVX2), AVX2+FMA (gemm_avx2.cc) or the kernels
// written on the SIMD layer (gemm_simd.cc: NEON, SIMD128, SSE2 or scalar, chosen at build
// time). This file has no N-API: the addon's glue is napi_gemm.cc, the WebAssembly
// module's is native/wasm/exports.cc.
// Letters and packed layouts: see gemm.h.
#include "gemm.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "quant.h"
#include "threadpool.h"

namespace lk {
bool cpu_has_avx2_fma();  // cpu.cc
bool cpu_has_avx512f();   // cpu.cc

namespace gemm {

// ---------- portable kernels ----------

void pack_a_scalar(float* dst, const Operand& a, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int MR) {
  for (int64_t ip = 0; ip < mc; ip += MR, dst += kc * MR) {
    const int64_t mr = mc - ip < MR ? mc - ip : MR;
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t i = 0; i < MR; ++i) {
        const int64_t row = i0 + ip + i, col = k0 + k;
        dst[k * MR + i] = i < mr ? load_elem(a.p, a.dt, a.trans ? col * a.ld + row : row * a.ld + col) : 0.f;
      }
    }
  }
}

void pack_b_scalar(float* dst, const Operand& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int NR) {
  for (int64_t jp = 0; jp < nc; jp += NR, dst += kc * NR) {
    const int64_t nr = nc - jp < NR ? nc - jp : NR;
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t j = 0; j < NR; ++j) {
        const int64_t row = k0 + k, col = j0 + jp + j;
        dst[k * NR + j] = j < nr ? load_elem(b.p, b.dt, b.trans ? col * b.ld + row : row * b.ld + col) : 0.f;
      }
    }
  }
}

// ---------- driver ----------

namespace {

// Cache blocking (tuned on Zen 3: 32 KiB L1d, 512 KiB L2 per core, shared L3).
//   Ap = MC×KC floats (L2, 288 KiB), one Bp panel KC×NR (L1, 32 KiB), Bp = KC×NC (L3).
// K runs in equal blocks of at most g_kc. Each block is one more pass over C, which in a
// training step comes from memory: KC 512 instead of 256 made a llama step 4.6% faster
// (10 of 10 alternating pairs), though products repeated on a cache-hot C gain nothing.
int64_t g_mc = 144, g_kc = 512, g_nc = 3072;
// Products below this many flops run on one thread.
int64_t g_min_parallel_flops = 1 << 19;

struct Tuning {  // LORAKIT_GEMM_MC/KC/NC/PAR: for tuning runs only
  Tuning() {
    auto rd = [](const char* name, int64_t& v) {
      const char* s = std::getenv(name);
      if (s && *s && std::atoll(s) > 0) v = std::atoll(s);
    };
    rd("LORAKIT_GEMM_MC", g_mc);
    rd("LORAKIT_GEMM_KC", g_kc);
    rd("LORAKIT_GEMM_NC", g_nc);
    rd("LORAKIT_GEMM_PAR", g_min_parallel_flops);
  }
} g_tuning;

thread_local AlignedBuf t_apack, t_bpack;
thread_local AlignedBuf t_bdirect;  // the direct path's packed B (filled by the calling thread)

}  // namespace

bool use_avx2() {
  static const bool yes = [] {
    if (!cpu_has_avx2_fma()) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c") != 0;
#else
    return false;
#endif
  }();
  return yes;
}

bool use_avx512() { return use_avx2() && cpu_has_avx512f(); }

namespace {

// Splits C[M,N] into a tm × tn grid of tiles (rows in multiples of mr, columns in
// multiples of nr), one per thread, minimising the largest tile's multiply work plus its
// packing (the 8 weighs a packed element against one multiply-add per k).
struct Grid {
  int64_t tm, tn, cm, cn;  // grid, and the rows / columns of one tile
};
Grid split(int64_t M, int64_t N, int nt, int64_t mr, int64_t nr) {
  Grid best{1, 1, M, N};
  double best_cost = -1;
  for (int64_t tm = 1; tm <= nt; ++tm) {
    if (nt % tm) continue;
    const int64_t tn = nt / tm;
    const int64_t cm = round_up(ceil_div(M, tm), mr), cn = round_up(ceil_div(N, tn), nr);
    const double cost = static_cast<double>(cm) * static_cast<double>(cn) + 8.0 * static_cast<double>(cm + cn);
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = {ceil_div(M, cm), ceil_div(N, cn), cm, cn};
    }
  }
  return best;
}

// Runs fn(task, thread) for task in [0, n): on the pool when nt > 1, else inline.
template <typename F>
void run_tasks(int64_t n, int nt, F&& fn) {
  if (nt <= 1 || n <= 1) {
    for (int64_t t = 0; t < n; ++t) fn(static_cast<int>(t), 0);
  } else {
    parallel_for(static_cast<int>(n), [&](int t, int th) { fn(t, th); });
  }
}

// The blocked loops (see the top of the file), on nt threads. The (jc, pc) steps run in
// order; in step s the tasks are
//   - (row block ic of mc rows) × (column group jg of the nc columns): pack the A block
//     op(A)[ic:ic+mc, pc:pc+kc] into the thread's own Ap and run the micro-kernel over
//     the column group against Bp[s % 2];
//   - then shares of the B panels of step s + 1, packed into Bp[(s + 1) % 2];
// taken dynamically by the threads, so each step ends with one wait, and a thread that
// finishes its products early packs the next B. (Step 0's B is packed before.)
// mc is chosen so the row blocks come in a multiple of nt; when there are fewer than
// 2·nt of them (few rows), the columns are split into groups too.
void packed(const Impl& im, float* C, int64_t ldc, const Operand& A, const Operand& B, int64_t M, int64_t N, int64_t K,
            float alpha, bool acc, int nt) {
  const int64_t MR = im.MR, NR = im.NR;
  // K in equal blocks of at most g_kc: a short last block would be a pass over C for little work
  const int64_t kcb = ceil_div(K, ceil_div(K, g_kc)), ncb = round_up(g_nc, NR);
  int64_t n_ic = ceil_div(M, round_up(g_mc, MR));
  if (nt > 1) n_ic = round_up(n_ic, nt);
  const int64_t mc_blk = round_up(ceil_div(M, n_ic), MR);
  n_ic = ceil_div(M, mc_blk);
  const int64_t nc_max = N < ncb ? round_up(N, NR) : ncb;
  const int64_t kc_max = K < kcb ? K : kcb;
  const size_t bsize = static_cast<size_t>(nc_max * kc_max + 16);
  float* Bbuf = t_bpack.get<float>(2 * bsize);
  float* Bp[2] = {Bbuf, Bbuf + bsize};  // each [nc/NR][kc][NR], shared by the threads

  struct Step {
    int64_t jc, nc, pc, kc;
  };
  const int64_t n_jc = ceil_div(N, ncb), n_pc = ceil_div(K, kcb), n_steps = n_jc * n_pc;
  auto step = [&](int64_t s) {
    const int64_t jc = (s / n_pc) * ncb, pc = (s % n_pc) * kcb;
    return Step{jc, N - jc < ncb ? N - jc : ncb, pc, K - pc < kcb ? K - pc : kcb};
  };
  // B shares of a step: nt·2 of whole panels (fewer when there are few panels)
  auto n_bshares = [&](const Step& st) {
    const int64_t n_panels = ceil_div(st.nc, NR);
    return nt > 1 ? (n_panels < 2 * nt ? n_panels : 2 * nt) : 1;
  };
  auto pack_share = [&](const Step& st, float* dst, int64_t t, int64_t n_bt) {
    const int64_t n_panels = ceil_div(st.nc, NR), per = ceil_div(n_panels, n_bt);
    const int64_t p0 = t * per, p1 = p0 + per < n_panels ? p0 + per : n_panels;
    if (p0 >= p1) return;
    const int64_t cols = (p1 * NR < st.nc ? p1 * NR : st.nc) - p0 * NR;
    if (quant::is_quant(B.dt)) quant::pack_b(dst + p0 * st.kc * NR, B, st.pc, st.kc, st.jc + p0 * NR, cols, im.NR);
    else im.pack_b(dst + p0 * st.kc * NR, B, st.pc, st.kc, st.jc + p0 * NR, cols);
  };

  {
    const Step s0 = step(0);
    const int64_t n_bt = n_bshares(s0);
    run_tasks(n_bt, nt, [&](int t, int) { pack_share(s0, Bp[0], t, n_bt); });
  }
  for (int64_t s = 0; s < n_steps; ++s) {
    const Step st = step(s);
    const bool beta = acc || st.pc > 0;
    const int64_t n_panels = ceil_div(st.nc, NR);
    const int64_t n_jg = n_ic >= 2 * nt ? 1 : (ceil_div(2 * nt, n_ic) < n_panels ? ceil_div(2 * nt, n_ic) : n_panels);
    const int64_t jg_panels = ceil_div(n_panels, n_jg);  // panels per column group
    const float* bcur = Bp[s % 2];
    const bool has_next = s + 1 < n_steps;
    const Step nx = has_next ? step(s + 1) : st;
    const int64_t n_next = has_next ? n_bshares(nx) : 0;
    const int64_t n_mul = n_ic * n_jg;
    run_tasks(n_mul + n_next, nt, [&](int t, int) {
      if (t >= n_mul) {
        pack_share(nx, Bp[(s + 1) % 2], t - n_mul, n_next);
        return;
      }
      const int64_t ic = (t / n_jg) * mc_blk, jg = t % n_jg;
      const int64_t mc = M - ic < mc_blk ? M - ic : mc_blk;
      const int64_t jr0 = jg * jg_panels * NR;
      const int64_t jr1 = (jg + 1) * jg_panels * NR < st.nc ? (jg + 1) * jg_panels * NR : st.nc;
      if (jr0 >= jr1) return;
      float* Ap = t_apack.get<float>(static_cast<size_t>(mc_blk * kc_max + 16));  // [mc/MR][kc][MR] (+ slack)
      im.pack_a(Ap, A, ic, mc, st.pc, st.kc);
      for (int64_t jr = jr0; jr < jr1; jr += NR) {
        const int nr = static_cast<int>(st.nc - jr < NR ? st.nc - jr : NR);
        const float* bp = bcur + (jr / NR) * st.kc * NR;
        for (int64_t ir = 0; ir < mc; ir += MR) {
          const int mr = static_cast<int>(mc - ir < MR ? mc - ir : MR);
          im.micro(st.kc, Ap + (ir / MR) * st.kc * MR, bp, C + (ic + ir) * ldc + st.jc + jr, ldc, mr, nr, alpha,
                   beta);
        }
      }
    });
  }
}

}  // namespace

const Impl& current_impl() {
#if defined(__x86_64__) || defined(__i386__)
  if (use_avx512()) return avx512_impl();
  if (use_avx2()) return avx2_impl();
#endif
  return simd_impl();
}

void run(float* C, int64_t ldc, const Operand& A, const Operand& B, int64_t M, int64_t N, int64_t K, float alpha,
         bool acc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // empty sum: C = 0, or unchanged when accumulating
    if (!acc)
      for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, static_cast<size_t>(N) * sizeof(float));
    return;
  }
  // few rows against a [N,K] weight (decoding): stream the weight once, no packing (gemv.cc)
  if (gemv_applies(A, B, M)) {
    gemv(C, ldc, A, B, M, N, K, alpha, acc);
    return;
  }
  const Impl& im = current_impl();
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const int nt = flops < static_cast<double>(g_min_parallel_flops) ? 1 : num_threads();

  // direct path: f32 A read in place, for small products and thin ones: few columns (each
  // A element used by few multiply-adds), a short K (packing costs as much as the
  // product), or few rows with an f32 B that needs no packing (B used by few rows). Not
  // when the direct kernel would walk a long K across pages, a row of lda or ldb floats per
  // k, once per tile: a B read in place by enough rows that packing it pays, or a transposed
  // A whose strided pass misses the cache or is repeated. The packers read those row by row
  // (the LoRA gradients dB = s·GLᵀ·h and dA = dhᵀ·x, summed over a batch's tokens, ran up to
  // 10× slower direct: issue 18). A transposed A: the direct kernel reads a strip of 6 or 8
  // values per k, once per column panel of 16; the packed path reads A once, in order, but
  // multiplies whole tiles of NR (16 or 32) columns, so for a thin C it does 2-4× the
  // multiply-adds. Measured (issue 17, bench/RESULTS.md): the direct pass stays cheaper while it
  // spans under K·lda = 2^20 floats (2^21 with one 8-column panel, LoRA r ≤ 8); packing
  // pays beyond, or when N > 16 would repeat the pass (LoRA's dB at 512 tokens × 768,
  // N = 8: 77 µs direct against 155 packed; Qwen3's at 1,024 tokens × 1,024-3,072, N = 16:
  // packed 1.1-1.9× faster).
  const bool b_in_place = B.dt == 0 && !B.trans && N % 8 == 0;
  const bool a_strided = A.trans && A.ld >= 256 && (N > 16 || K * A.ld >= (N > 8 ? int64_t{1} << 20 : int64_t{1} << 21));
  const bool strided = K >= 256 && (a_strided || (M >= 12 && b_in_place && B.ld >= 256));
  if (im.direct && A.dt == 0 && !strided &&
      (N <= 32 || K <= 16 || flops <= 2.0 * 64 * 64 * 64 || (M <= 32 && b_in_place))) {
    const int64_t NRd = im.NRd;
    const float* bpacked = nullptr;
    if (!b_in_place) {
      float* bp = t_bdirect.get<float>(static_cast<size_t>(round_up(N, NRd) * K));  // [ceil(N/NRd)][K][NRd]
      if (quant::is_quant(B.dt)) quant::pack_b(bp, B, 0, K, 0, N, im.NRd);
      else im.pack_b_direct(bp, B, 0, K, 0, N);
      bpacked = bp;
    }
    // tiles: the grid that balances nt threads, or, with many rows, up to 4 row chunks per
    // thread (B is shared, so extra tasks cost nothing and even out a slowed core)
    const int64_t R = N <= 8 ? 8 : 6;  // rows of the direct kernels (8×8 and 6×16)
    Grid g = split(M, N, nt, R, NRd);
    if (nt > 1 && M >= 48 * nt) {
      const int64_t tm = M / 48 < 4 * nt ? M / 48 : 4 * nt;
      const int64_t cm = round_up(ceil_div(M, tm), R);
      g = {ceil_div(M, cm), 1, cm, N};
    }
    const float* Af = static_cast<const float*>(A.p);
    const float* Bf = static_cast<const float*>(B.p);
    auto task = [&](int t, int) {
      const int64_t ti = t / g.tn, tj = t % g.tn;
      const int64_t i0 = ti * g.cm, j0 = tj * g.cn;
      const int64_t i1 = i0 + g.cm < M ? i0 + g.cm : M, j1 = j0 + g.cn < N ? j0 + g.cn : N;
      if (i0 < i1 && j0 < j1) im.direct(Af, A.ld, A.trans, Bf, B.ld, bpacked, C, ldc, i0, i1, j0, j1, K, alpha, acc);
    };
    if (g.tm * g.tn == 1) task(0, 0);
    else parallel_for(static_cast<int>(g.tm * g.tn), task);
    return;
  }

  packed(im, C, ldc, A, B, M, N, K, alpha, acc, nt);
}

}  // namespace gemm
}  // namespace lk

