// Inference-only attention on AMX-BF16 (issue 24; docs/ARCHITECTURE.md §Decoding, "Prompt
// products on AMX"): the prompt forward's attention (many query rows at once) with q·kᵀ and
// p·v as tile products. Numerics differ from ops_attention.cc's f32 kernel on purpose, as
// llama.cpp's do: q, k, v and the softmax weights p are rounded to bf16 (round to nearest
// even), the dot products are summed in f32 in the tiles; the softmax (max, exp, sums, the
// final 1/l) is f32, online per key tile (flash style), in the base-2 domain.
// Same semantics as attentionForward (backend/types.ts): causal with a KV cache (query t at
// slot t + S − T), sliding window, additive key-padding or full mask, grouped-query heads,
// lse written, a row that sees no key gives zeros and lse = −∞.
// Only the addon calls this (addon.cc registers attentionInference); training, evaluation and
// the parity tests never do: the backend routes a forward here only while generation's
// forward has turned inference products on (backend/addon.ts), for T > kGemvMaxRows query rows.
// LORAKIT_AMX=0 turns it off (amx::bf16_ready()), and LORAKIT_AMX_ATTENTION=0 this kernel alone.
//
// Layout: one pool pass packs every (batch, kv head)'s keys as bf16 rows (the A tiles of
// kᵀ-side products) and its values as vᵀ A tiles (16 columns × 16 key pairs), zero-padded to
// whole tiles. Then tasks of (batch, head, block of query rows) take 16 rows at a time, the
// rows being the 16 lanes of every vector: scoresᵀ (keys × rows) = K tiles × qᵀ B tiles for
// key tiles of 64 (the last may be 32) keys; the softmax in AVX-512 is lane-wise (no
// horizontal sums) and writes p as B tiles of key pairs; accᵀ (columns × rows, f32) += vᵀ · p in
// C tiles loaded and stored per key tile. The next key tile's scores are issued before this
// tile's softmax reads its own (a vector load of what a tile store just wrote stalls); the
// running max moves only when passed by kSlack, so the accumulator is rarely rescaled and,
// once a row tile's first key tile has set it, a key tile's softmax takes one pass.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "amx.h"
#include "attention.h"
#include "gemm.h"
#include "napi_util.h"
#include "threadpool.h"

#if defined(LK_AMX)
// GCC 12's AVX-512 conversion intrinsics trip -Wmaybe-uninitialized on their own undefined
// pass-through operand when inlined under a target attribute (a false positive; as gemm_amx.cc)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace lk {
namespace amx {
namespace {

using Shape = AttentionDims;  // attention.h

// The largest head size taken (the accumulator rows live in a per-thread scratch).
constexpr int64_t kMaxD = 256;

#if defined(LK_AMX)
#define LK_AMX_ATTN __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bf16,avx512bw,avx512vl,avx512dq")))

// Packed sizes for S keys: keys padded to whole 32-key chunks (Sp), D to whole 32-deep
// chunks for the keys (Dk) and 16-row panels for the values (Dv).
struct Packed {
  int64_t Sp, Dk, Dv;
  explicit Packed(const Shape& d) : Sp(gemm::round_up(d.S, 32)), Dk(gemm::round_up(d.D, 32)), Dv(gemm::round_up(d.D, 16)) {}
  int64_t k_halves() const { return Sp * Dk; }  // bf16 values
  int64_t v_halves() const { return Sp * Dv; }
  // the A tile of keys [16p, 16p + 16), chunk c of D (rows Dk bf16 apart)
  const uint16_t* k_tile(const uint16_t* kp, int64_t panel, int64_t c) const { return kp + 16 * panel * Dk + 32 * c; }
  // the A tile of value columns [16c, 16c + 16) (rows) against keys [32k, 32k + 32) (pairs)
  const uint16_t* v_tile(const uint16_t* vp, int64_t chunk, int64_t c) const { return vp + (chunk * (Dv / 16) + c) * 512; }
};

// 16 floats (the first n; the rest 0) rounded to bf16
LK_AMX_ATTN inline __m256i bf16x16(const float* x, int64_t n) {
  const __m512 v = n >= 16 ? _mm512_loadu_ps(x) : _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), x);
  const __m256bh h = _mm512_cvtneps_pbh(v);
  return reinterpret_cast<const __m256i&>(h);
}

// 32 floats from x (the first n; the rest 0) rounded to bf16: 16 pairs
LK_AMX_ATTN inline __m512i bf16x32(const float* x, int64_t n) {
  if (n <= 0) return _mm512_setzero_si512();
  const __m256i lo = bf16x16(x, std::min<int64_t>(n, 16));
  const __m256i hi = n > 16 ? bf16x16(x + 16, std::min<int64_t>(n - 16, 16)) : _mm256_setzero_si256();
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// Keys [32·kc, + 32) of batch b, every kv head g, into the head's buffer (packed + g·stride)
// as bf16 rows of Dk (zero-padded; rows S .. Sp − 1 zero): the A tiles of kᵀ-side products
// are 16 of these rows, 32 values deep. A chunk of keys reads its rows of all heads in one
// contiguous stretch (a head's rows alone are Hkv·D floats apart).
LK_AMX_ATTN void pack_keys(uint16_t* packed, int64_t stride, const Shape& d, const Packed& pk, const float* k, int64_t b, int64_t kc) {
  const int64_t kvs = d.Hkv * d.D;
  for (int64_t s = 32 * kc; s < 32 * kc + 32; ++s)
    for (int64_t g = 0; g < d.Hkv; ++g) {
      uint16_t* kp = packed + (b * d.Hkv + g) * stride + s * pk.Dk;
      for (int64_t c = 0; c < pk.Dk; c += 32) {
        const __m512i r = s < d.S ? bf16x32(k + (b * d.S + s) * kvs + g * d.D + c, d.D - c) : _mm512_setzero_si512();
        _mm512_store_si512(kp + c, r);
      }
    }
}

// Values [32·kc, + 32) of batch b, every kv head g, into the head's vᵀ A tiles (at packed +
// g·stride + offset): per 32-key chunk, per 16-column panel, 16 rows c of 16 pairs j:
// (v[32k + 2j][16c' + c], v[32k + 2j + 1][16c' + c]).
LK_AMX_ATTN void pack_values(uint16_t* packed, int64_t stride, int64_t offset, const Shape& d, const Packed& pk, const float* v,
                             int64_t b, int64_t kc) {
  const int64_t kvs = d.Hkv * d.D;
  for (int64_t g = 0; g < d.Hkv; ++g)
    for (int64_t c = 0; c < pk.Dv / 16; ++c) {
      const int64_t n = std::min<int64_t>(d.D - 16 * c, 16);
      __m512i r[16];
      for (int j = 0; j < 16; ++j) {
        const int64_t s = 32 * kc + 2 * j;
        const float* row = v + (b * d.S + s) * kvs + g * d.D + 16 * c;
        const __m256i e = s < d.S ? bf16x16(row, n) : _mm256_setzero_si256();
        const __m256i o = s + 1 < d.S ? bf16x16(row + kvs, n) : _mm256_setzero_si256();
        r[j] = _mm512_or_si512(_mm512_cvtepu16_epi32(e), _mm512_slli_epi32(_mm512_cvtepu16_epi32(o), 16));
      }
      transpose16(r);
      uint16_t* dst = packed + (b * d.Hkv + g) * stride + offset + (kc * (pk.Dv / 16) + c) * 512;
      for (int i = 0; i < 16; ++i) _mm512_store_si512(dst + 32 * i, r[i]);
    }
}

// How far (log2 units) a row's scores may pass its running max before the max moves.
constexpr float kSlack = 8.f;

// 2^x for x ≤ kSlack (−∞ and anything below −150 give 0 under flush-to-zero): 2^n · 2^f with
// f = x − n in [−½, ½], 2^f by a degree-5 polynomial fitted (by us, in f64, for the least
// largest relative error) over [−½, ½]: 2.2e-7 relative in f32, below p's own bf16 rounding.
LK_AMX_ATTN inline __m512 exp2_tile(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-150.f));
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.3276409590616822e-03f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6755269914865494e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5507134646177292e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022120237350464e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314694404602051e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000001192092896f));
  return _mm512_scalef_ps(p, n);
}

// Scoresᵀ of keys [16·panel0, + 16·NP) against the 16 query rows (qt: per 32-deep chunk of
// D, a B tile of 16 pair rows × 16 query rows) into sc: key j's 16 row scores at sc + 16j.
template <int NP>
LK_AMX_ATTN inline void score_tiles(float* sc, const uint32_t* qt, const Packed& pk, const uint16_t* kp, int64_t panel0) {
  _tile_zero(0);
  _tile_zero(1);
  if (NP > 2) {
    _tile_zero(2);
    _tile_zero(3);
  }
  const int64_t lk = pk.Dk * 2;
  for (int64_t c = 0; c < pk.Dk / 32; ++c) {
    _tile_loadd(6, qt + 256 * c, 64);
    _tile_loadd(4, pk.k_tile(kp, panel0, c), lk);
    _tile_loadd(5, pk.k_tile(kp, panel0 + 1, c), lk);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 5, 6);
    if (NP > 2) {
      _tile_loadd(4, pk.k_tile(kp, panel0 + 2, c), lk);
      _tile_loadd(5, pk.k_tile(kp, panel0 + 3, c), lk);
      _tile_dpbf16ps(2, 4, 6);
      _tile_dpbf16ps(3, 5, 6);
    }
  }
  _tile_stored(0, sc, 64);
  _tile_stored(1, sc + 256, 64);
  if (NP > 2) {
    _tile_stored(2, sc + 512, 64);
    _tile_stored(3, sc + 768, 64);
  }
}

// accᵀ (value columns [16·c0, + 16·NC) as rows, the 16 query rows as columns: 16 × 16 f32
// per panel, panels 256 floats apart) += vᵀ of chunks [chunk0, + NK) · p (pb: a B tile of
// 16 key-pair rows × 16 query rows per 32-key chunk).
template <int NC, int NK>
LK_AMX_ATTN inline void pv_tiles(float* acc, const uint32_t* pb, const Packed& pk, const uint16_t* vp, int64_t chunk0, int64_t c0) {
  float* a = acc + 256 * c0;
  _tile_loadd(0, a, 64);
  if (NC > 1) _tile_loadd(1, a + 256, 64);
  if (NC > 2) _tile_loadd(2, a + 512, 64);
  if (NC > 3) _tile_loadd(3, a + 768, 64);
  for (int kc = 0; kc < NK; ++kc) {
    _tile_loadd(6, pb + 256 * kc, 64);
    _tile_loadd(4, pk.v_tile(vp, chunk0 + kc, c0), 64);
    _tile_dpbf16ps(0, 4, 6);
    if (NC > 1) {
      _tile_loadd(5, pk.v_tile(vp, chunk0 + kc, c0 + 1), 64);
      _tile_dpbf16ps(1, 5, 6);
    }
    if (NC > 2) {
      _tile_loadd(4, pk.v_tile(vp, chunk0 + kc, c0 + 2), 64);
      _tile_dpbf16ps(2, 4, 6);
    }
    if (NC > 3) {
      _tile_loadd(5, pk.v_tile(vp, chunk0 + kc, c0 + 3), 64);
      _tile_dpbf16ps(3, 5, 6);
    }
  }
  _tile_stored(0, a, 64);
  if (NC > 1) _tile_stored(1, a + 256, 64);
  if (NC > 2) _tile_stored(2, a + 512, 64);
  if (NC > 3) _tile_stored(3, a + 768, 64);
}

template <int NK>
LK_AMX_ATTN void pv_all(float* acc, const uint32_t* pb, const Packed& pk, const uint16_t* vp, int64_t chunk0) {
  const int64_t ncols = pk.Dv / 16;
  for (int64_t c = 0; c < ncols; c += 4) {
    switch (std::min<int64_t>(ncols - c, 4)) {
      case 1: pv_tiles<1, NK>(acc, pb, pk, vp, chunk0, c); break;
      case 2: pv_tiles<2, NK>(acc, pb, pk, vp, chunk0, c); break;
      case 3: pv_tiles<3, NK>(acc, pb, pk, vp, chunk0, c); break;
      default: pv_tiles<4, NK>(acc, pb, pk, vp, chunk0, c); break;
    }
  }
}

// A thread's scratch, 64-byte aligned: qᵀ tiles, scoresᵀ, p pairs, accᵀ.
struct Work {
  uint32_t* qt;  // Dk / 32 B tiles of 256 words
  float* sc;     // 2 × 64 keys × 16 rows (this tile, the next)
  uint32_t* pb;  // 2 B tiles of 256 words
  float* acc;    // Dv × 16 rows
  static int64_t floats(const Packed& pk) { return 8 * pk.Dk + 2048 + 512 + 16 * pk.Dv; }
  Work(float* base, const Packed& pk)
      : qt(reinterpret_cast<uint32_t*>(base)), sc(base + 8 * pk.Dk), pb(reinterpret_cast<uint32_t*>(sc + 2048)), acc(sc + 2560) {}
};

thread_local gemm::AlignedBuf t_work;
thread_local gemm::AlignedBuf t_packed;  // the caller's: every kv head's packed keys and values

// What x of a key needs: the scale, the rows' visibility bounds (lanes), the mask.
struct XArgs {
  __m512 c, l2e;          // scale·log2(e), log2(e)
  __m512i lov, seenv;     // row i sees keys lo ≤ s < seen
  __m512i mrows;          // lane i: i·S (a full mask's row offsets)
  const float* mfull;     // [B, T, S] mask at the row tile's first row, or null
  const float* mpad;      // [B, S] mask row, or null
};

// x of key s for the 16 rows (their scores at xs): scale·log2(e)·score (+ log2(e)·mask), −∞
// where a row does not see s (checked only when the tile is partial: some row sees only part)
LK_AMX_ATTN inline __m512 xval(const float* xs, int64_t s, bool partial, const XArgs& a) {
  __m512 x = _mm512_mul_ps(_mm512_load_ps(xs), a.c);
  const __m512i sv = _mm512_set1_epi32(static_cast<int>(s));
  if (partial) {
    const __mmask16 vis = _mm512_cmple_epi32_mask(a.lov, sv) & _mm512_cmpgt_epi32_mask(a.seenv, sv);
    if (a.mfull) x = _mm512_fmadd_ps(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), vis, _mm512_add_epi32(a.mrows, sv), a.mfull, 4), a.l2e, x);
    else if (a.mpad && vis) x = _mm512_fmadd_ps(_mm512_set1_ps(a.mpad[s]), a.l2e, x);
    return _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), vis, x);
  }
  if (a.mfull) return _mm512_fmadd_ps(_mm512_i32gather_ps(_mm512_add_epi32(a.mrows, sv), a.mfull, 4), a.l2e, x);
  if (a.mpad) return _mm512_fmadd_ps(_mm512_set1_ps(a.mpad[s]), a.l2e, x);
  return x;
}

// p of two keys (16 rows each) as one B-tile row of bf16 pairs (p_even[i], p_odd[i])
LK_AMX_ATTN inline void store_pairs(uint32_t* dst, __m512 pe, __m512 po) {
  const __m512i pairs = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5,
                                         20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512bh h = _mm512_cvtne2ps_pbh(po, pe);
  _mm512_store_si512(dst, _mm512_permutexvar_epi16(pairs, reinterpret_cast<const __m512i&>(h)));
}

// Query rows [t0, t0 + rows) (rows ≤ 16) of head h in batch b. The 16 rows are the 16 lanes
// of every vector here (scoresᵀ: one key's scores per vector), so the softmax's max, sums and
// rescaling are lane-wise, with no horizontal reductions.
LK_AMX_ATTN void row_tile(const Shape& d, const Packed& pk, float* out, float* lse, const float* q, const uint16_t* kp,
                          const uint16_t* vp, int64_t b, int64_t h, int64_t t0, int rows, const Work& w) {
  const int64_t D = d.D, qs = d.Hq * D;
  constexpr float kLog2e = 1.4426950408889634f;
  const __m512 c = _mm512_set1_ps(d.scale * kLog2e), l2e = _mm512_set1_ps(kLog2e);
  const __m512 ninf = _mm512_set1_ps(-INFINITY), zero = _mm512_setzero_ps();
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // qᵀ: per 32-deep chunk of D, the rows' bf16 pairs transposed (padding rows zero)
  for (int64_t ch = 0; ch < pk.Dk / 32; ++ch) {
    __m512i r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? bf16x32(q + (b * d.T + t0 + i) * qs + h * D + 32 * ch, D - 32 * ch) : _mm512_setzero_si512();
    transpose16(r);
    for (int p = 0; p < 16; ++p) _mm512_store_si512(w.qt + 256 * ch + 16 * p, r[p]);
  }
  // per-row visibility lo ≤ s < seen (a padding row sees nothing), as lanes
  alignas(64) int32_t lo_a[16], seen_a[16];
  int64_t kbeg = d.S, kend = 0, lo_max = 0, seen_min = d.S;
  for (int i = 0; i < 16; ++i) {
    lo_a[i] = i < rows ? static_cast<int32_t>(d.lo(t0 + i)) : 0;
    seen_a[i] = i < rows ? static_cast<int32_t>(d.seen(t0 + i)) : 0;
    if (i < rows && seen_a[i] > lo_a[i]) kbeg = std::min<int64_t>(kbeg, lo_a[i]), kend = std::max<int64_t>(kend, seen_a[i]);
    if (i < rows) lo_max = std::max<int64_t>(lo_max, lo_a[i]), seen_min = std::min<int64_t>(seen_min, seen_a[i]);
  }
  const __m512i lov = _mm512_load_si512(lo_a), seenv = _mm512_load_si512(seen_a);
  // the mask: [B, S] is one row for all (a broadcast per key); [B, T, S] is gathered
  const float* mpad = d.mask && !d.mask_full ? d.mask + b * d.S : nullptr;
  const float* mfull = d.mask && d.mask_full ? d.mask + (b * d.T + t0) * d.S : nullptr;
  const XArgs xv{c, l2e, lov, seenv, _mm512_mullo_epi32(iota, _mm512_set1_epi32(static_cast<int>(d.S))), mfull, mpad};
  __m512 m = ninf, l = zero;
  std::memset(w.acc, 0, static_cast<size_t>(16 * pk.Dv) * 4);
  // Key tiles of 64 keys (the last may be 32) from a whole chunk: the scores of the next tile
  // are issued before the softmax of this one, so the tiles' stores have landed when it reads them.
  const int64_t sbeg = kbeg / 32 * 32;
  auto scores = [&](int64_t s0, float* sc) {
    if (kend - s0 > 32) score_tiles<4>(sc, w.qt, pk, kp, s0 / 16);
    else score_tiles<2>(sc, w.qt, pk, kp, s0 / 16);
  };
  if (sbeg < kend) scores(sbeg, w.sc);
  for (int64_t s0 = sbeg, n = 0; s0 < kend; s0 += 64, ++n) {
    const int nk = kend - s0 > 32 ? 2 : 1;  // 32-key chunks in this tile
    const int64_t s1 = s0 + 32 * nk;
    float* sc = w.sc + 1024 * (n & 1);
    if (s0 + 64 < kend) scores(s0 + 64, w.sc + 1024 * ((n + 1) & 1));
    const bool partial = rows < 16 || lo_max > s0 || seen_min < s1;
    // After a row tile's first key tile its rows' max mostly stands: one pass, p against the
    // current m, kept unless a row's tile max passes m by more than kSlack.
    bool done = false;
    if (n > 0) {
      const __m512 msafe = _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(m, ninf, _CMP_EQ_OQ), zero);
      __m512 mx0 = ninf, mx1 = ninf, l0 = zero, l1 = zero;
      for (int j = 0; j < 32 * nk; j += 2) {
        const __m512 xe = xval(sc + 16 * j, s0 + j, partial, xv), xo = xval(sc + 16 * j + 16, s0 + j + 1, partial, xv);
        mx0 = _mm512_max_ps(mx0, xe);
        mx1 = _mm512_max_ps(mx1, xo);
        const __m512 pe = exp2_tile(_mm512_sub_ps(xe, msafe)), po = exp2_tile(_mm512_sub_ps(xo, msafe));
        l0 = _mm512_add_ps(l0, pe);
        l1 = _mm512_add_ps(l1, po);
        store_pairs(w.pb + 8 * j, pe, po);
      }
      if (!_mm512_cmp_ps_mask(_mm512_max_ps(mx0, mx1), _mm512_add_ps(m, _mm512_set1_ps(kSlack)), _CMP_GT_OQ)) {
        l = _mm512_add_ps(l, _mm512_add_ps(l0, l1));
        done = true;
      }
    }
    if (!done) {
      // pass 1: x of every key, stored over the scores; the tile's max
      __m512 mx0 = ninf, mx1 = ninf;
      for (int j = 0; j < 32 * nk; j += 2) {
        const __m512 xe = xval(sc + 16 * j, s0 + j, partial, xv), xo = xval(sc + 16 * j + 16, s0 + j + 1, partial, xv);
        _mm512_store_ps(sc + 16 * j, xe);
        _mm512_store_ps(sc + 16 * j + 16, xo);
        mx0 = _mm512_max_ps(mx0, xe);
        mx1 = _mm512_max_ps(mx1, xo);
      }
      // The running max m moves only where the tile's max passes it by more than kSlack: p then
      // stays ≤ 2^kSlack, and the accumulator is rarely rescaled (a read of what the tiles stored).
      const __m512 mt = _mm512_max_ps(mx0, mx1);
      const __mmask16 up = _mm512_cmp_ps_mask(mt, _mm512_add_ps(m, _mm512_set1_ps(kSlack)), _CMP_GT_OQ);
      if (up) {
        const __m512 mnew = _mm512_mask_mov_ps(m, up, mt);
        const __m512 alpha = _mm512_mask_mov_ps(_mm512_set1_ps(1.f), up, exp2_tile(_mm512_sub_ps(m, mnew)));  // m = −∞: 0
        l = _mm512_mul_ps(l, alpha);
        if (_mm512_mask_cmp_ps_mask(up, m, ninf, _CMP_NEQ_OQ))  // rows with something to rescale
          for (int64_t j = 0; j < pk.Dv; ++j) _mm512_store_ps(w.acc + 16 * j, _mm512_mul_ps(_mm512_load_ps(w.acc + 16 * j), alpha));
        m = mnew;
      }
      // rows that have seen no key yet: exponents against 0 (their x are −∞: p = 0)
      const __m512 msafe = _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(m, ninf, _CMP_EQ_OQ), zero);
      // pass 2: p = 2^(x − m), their sums, and p as bf16 pairs of keys (the B tiles of p·v)
      __m512 l0 = l, l1 = zero;
      for (int j = 0; j < 32 * nk; j += 2) {
        const __m512 pe = exp2_tile(_mm512_sub_ps(_mm512_load_ps(sc + 16 * j), msafe));
        const __m512 po = exp2_tile(_mm512_sub_ps(_mm512_load_ps(sc + 16 * j + 16), msafe));
        l0 = _mm512_add_ps(l0, pe);
        l1 = _mm512_add_ps(l1, po);
        store_pairs(w.pb + 8 * j, pe, po);
      }
      l = _mm512_add_ps(l0, l1);
    }
    if (nk == 2) pv_all<2>(w.acc, w.pb, pk, vp, s0 / 32);
    else pv_all<1>(w.acc, w.pb, pk, vp, s0 / 32);
  }
  // out rows = accᵀ transposed / l; lse = (m + log2 l)·ln 2; a row with l = 0 saw no key
  alignas(64) float mv[16], lv[16], inv[16];
  _mm512_store_ps(mv, m);
  _mm512_store_ps(lv, l);
  for (int i = 0; i < 16; ++i) inv[i] = lv[i] > 0.f ? 1.f / lv[i] : 0.f;
  for (int64_t cp = 0; cp < pk.Dv / 16; ++cp) {
    __m512i r[16];
    for (int j = 0; j < 16; ++j) r[j] = _mm512_load_si512(w.acc + 256 * cp + 16 * j);
    transpose16(r);
    const int64_t n = std::min<int64_t>(D - 16 * cp, 16);
    const __mmask16 mk = n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1);
    for (int i = 0; i < rows; ++i)
      _mm512_mask_storeu_ps(out + (b * d.T + t0 + i) * qs + h * D + 16 * cp, mk,
                            _mm512_mul_ps(_mm512_castsi512_ps(r[i]), _mm512_set1_ps(inv[i])));
  }
  for (int i = 0; i < rows; ++i)
    lse[(b * d.Hq + h) * d.T + t0 + i] =
        lv[i] > 0.f ? static_cast<float>((static_cast<double>(mv[i]) + std::log2(static_cast<double>(lv[i]))) * 0.6931471805599453)
                    : -INFINITY;
}

void forward(const Shape& d, float* out, float* lse, const float* q, const float* k, const float* v) {
  const Packed pk(d);
  const int64_t groups = d.B * d.Hkv, kh = pk.k_halves(), vh = pk.v_halves();
  uint16_t* packed = t_packed.get<uint16_t>(static_cast<size_t>(groups * (kh + vh)));
  const int nt = num_threads();
  const int64_t chunks = pk.Sp / 32;
  parallel_for(static_cast<int>(d.B * chunks), [&](int task, int) {
    pack_keys(packed, kh + vh, d, pk, k, task / chunks, task % chunks);
    pack_values(packed, kh + vh, kh, d, pk, v, task / chunks, task % chunks);
  });
  // blocks of 64 query rows (a task's tile configuration serves four row tiles), 16 when
  // that leaves under 8 tasks per thread
  const int64_t pairs = d.B * d.Hq, G = d.Hq / d.Hkv;
  const int64_t rows = pairs * ((d.T + 63) / 64) >= 8 * nt ? 64 : 16;
  const int64_t nqb = (d.T + rows - 1) / rows;
  parallel_for(static_cast<int>(pairs * nqb), [&](int task, int) {
    // the heaviest blocks first (causal: the last rows see the most keys)
    const int64_t qb = nqb - 1 - task / pairs, bh = task % pairs, h = bh % d.Hq, b = bh / d.Hq;
    const uint16_t* kp = packed + (b * d.Hkv + h / G) * (kh + vh);
    const Work w(t_work.get<float>(static_cast<size_t>(Work::floats(pk))), pk);
    // flush to zero, denormals as zero: 2^x of a hidden key's −∞ (and p far below the row's
    // max) underflows, and an underflow otherwise costs a microcode assist per vector
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);
    tiles_bf16();
    for (int64_t t0 = qb * rows; t0 < std::min(d.T, (qb + 1) * rows); t0 += 16)
      row_tile(d, pk, out, lse, q, kp, kp + kh, b, h, t0, static_cast<int>(std::min<int64_t>(16, d.T - t0)), w);
    tiles_release();
    _mm_setcsr(csr);
  });
}
#endif  // LK_AMX

// The kernel may run: AMX-BF16 is ready (bf16_ready: CPU, kernel permission, LORAKIT_AMX) and
// LORAKIT_AMX_ATTENTION is not 0 (the prompt's attention then stays on the f32 kernel, for A/B runs).
bool attention_on() {
#if defined(LK_AMX)
  static const bool on = [] {
    const char* e = std::getenv("LORAKIT_AMX_ATTENTION");
    return !(e && *e == '0') && bf16_ready();
  }();
  return on;
#else
  return false;
#endif
}

// attentionInference(out, lse, q, k, v, mask, dims): attentionForward's result on AMX-BF16
// when it applies (AMX ready, more than kGemvMaxRows query rows, D ≤ kMaxD, S < 2^31),
// returning true; else false, having written nothing (the caller then runs attentionForward).
// Shapes are checked at the op boundary (TypeScript).
napi_value AttentionInference(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *lse, *q, *k, *v;
  size_t n0, n1, n2, n3, n4;
  Shape d;
  if (!get_f32(a, 0, out, n0, "attentionInference", "out") || !get_f32(a, 1, lse, n1, "attentionInference", "lse") ||
      !get_f32(a, 2, q, n2, "attentionInference", "q") || !get_f32(a, 3, k, n3, "attentionInference", "k") ||
      !get_f32(a, 4, v, n4, "attentionInference", "v") || !get_dims(a, 5, d, "attentionInference"))
    return nullptr;
  bool done = false;
#if defined(LK_AMX)
  if (attention_on() && d.T > gemm::kGemvMaxRows && d.D > 0 && d.D <= kMaxD && d.S >= d.T && d.S < (int64_t{1} << 31) &&
      d.Hkv > 0 && d.Hq % d.Hkv == 0 && d.B > 0) {
    forward(d, out, lse, q, k, v);
    done = true;
  }
#endif
  napi_value r;
  napi_get_boolean(env, done, &r);
  return r;
}

// amxAttentionAvailable(): whether attentionInference runs on AMX on this machine (attention_on).
napi_value AttentionInfo(napi_env env, napi_callback_info) {
  napi_value r;
  napi_get_boolean(env, attention_on(), &r);
  return r;
}

}  // namespace
}  // namespace amx

void RegisterAttentionAmx(napi_env env, napi_value exports) {
  export_fn(env, exports, "attentionInference", amx::AttentionInference);
  export_fn(env, exports, "amxAttentionAvailable", amx::AttentionInfo);
}

}  // namespace lk
