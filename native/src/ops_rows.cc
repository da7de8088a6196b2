// Kernels for the loops the layers above the backend used to run themselves
// (docs/ARCHITECTURE.md §Backend memory): sums into an accumulator, strided copies, row and
// column operations (LoRA bias, DoRA), masks, tanh and SGD. Their reference twins are in
// src/backend/ref/rows.ts; tests/unit/kernels-rows.test.ts compares the two on odd shapes.
// Sums are taken in f64 like the reference. Large loops are spread over the thread pool by
// rows or columns, so no two tasks write the same element.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops_common.h"

namespace lk {

namespace {

constexpr int64_t kRowGrain = 1 << 14;  // elements per task, at least

inline int64_t rows_grain(int64_t cols) { return std::max<int64_t>(1, kRowGrain / std::max<int64_t>(1, cols)); }

// Σ x[offset .. offset+n) in f64, in order (the loss: a few thousand values per call)
napi_value SumRange(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float* x; size_t n;
  if (!get_f32(a, 0, x, n, "sumRange", "x")) return nullptr;
  const int64_t off = get_int(a, 1, 0), cnt = get_int(a, 2, static_cast<int64_t>(n) - off);
  if (off < 0 || cnt < 0 || off + cnt > static_cast<int64_t>(n)) { throw_type(env, "sumRange: range outside x"); return nullptr; }
  double s = 0;
  for (int64_t i = off; i < off + cnt; ++i) s += x[i];
  return number(env, s);
}

// dst[d0 + r·ds + c] (+)= src[s0 + r·ss + c]; dims = [rows, cols, d0, ds, s0, ss, accumulate]
napi_value Copy2d(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *dst, *src; size_t nd, ns;
  if (!get_f32(a, 0, dst, nd, "copy2d", "dst") || !get_f32(a, 1, src, ns, "copy2d", "src")) return nullptr;
  const int64_t rows = get_int(a, 2), cols = get_int(a, 3), d0 = get_int(a, 4), ds = get_int(a, 5), s0 = get_int(a, 6), ss = get_int(a, 7);
  const bool acc = get_bool(a, 8);
  if (rows <= 0 || cols <= 0) return undefined(env);
  if (d0 < 0 || s0 < 0 || ds < 0 || ss < 0 || d0 + (rows - 1) * ds + cols > static_cast<int64_t>(nd) || s0 + (rows - 1) * ss + cols > static_cast<int64_t>(ns)) {
    throw_type(env, "copy2d: rows reach outside dst or src");
    return nullptr;
  }
  // chunks of the rows·cols elements, so one long row (a prompt's keys into the KV cache:
  // 512 × 768 floats) is split among the threads too
  run_chunks(rows * cols, kRowGrain, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e;) {
      const int64_t r = i / cols, c0 = i % cols, n = std::min(cols - c0, e - i);
      float* d = dst + d0 + r * ds + c0;
      const float* s = src + s0 + r * ss + c0;
      if (acc) for (int64_t c = 0; c < n; ++c) d[c] += s[c];
      else std::memcpy(d, s, static_cast<size_t>(n) * 4);
      i += n;
    }
  });
  return undefined(env);
}

// out[n] = a[n] ·/÷ b[n]
napi_value MulDiv(napi_env env, napi_callback_info info, bool divide) {
  Args a(env, info);
  const char* fn = divide ? "div" : "mul";
  float *out, *x, *y; size_t n, n1, n2;
  if (!get_f32(a, 0, out, n, fn, "out") || !get_f32(a, 1, x, n1, fn, "a") || !get_f32(a, 2, y, n2, fn, "b")) return nullptr;
  if (n1 < n || n2 < n) { throw_type(env, std::string(fn) + ": a and b must have out's length"); return nullptr; }
  run_chunks(static_cast<int64_t>(n), kRowGrain, [&](int64_t b, int64_t e, int) {
    if (divide) for (int64_t i = b; i < e; ++i) out[i] = x[i] / y[i];
    else for (int64_t i = b; i < e; ++i) out[i] = x[i] * y[i];
  });
  return undefined(env);
}
napi_value Mul(napi_env env, napi_callback_info info) { return MulDiv(env, info, false); }
napi_value Div(napi_env env, napi_callback_info info) { return MulDiv(env, info, true); }

// out[N,C] += alpha · v[C]
napi_value AddRowVector(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *v; size_t n, nv;
  if (!get_f32(a, 0, out, n, "addRowVector", "out") || !get_f32(a, 1, v, nv, "addRowVector", "v")) return nullptr;
  const double alpha = get_num(a, 2);
  const int64_t N = get_int(a, 3), C = get_int(a, 4);
  if (static_cast<int64_t>(n) < N * C || static_cast<int64_t>(nv) < C) { throw_type(env, "addRowVector: out or v too short"); return nullptr; }
  std::vector<float> sv(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) sv[c] = static_cast<float>(alpha * v[c]);
  run_chunks(N, rows_grain(C), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      float* o = out + r * C;
      for (int64_t c = 0; c < C; ++c) o[c] += sv[c];
    }
  });
  return undefined(env);
}

// out[N,C] = (v[c] + shift) · x[N,C]
napi_value ScaleColumns(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *x, *v; size_t n, nx, nv;
  if (!get_f32(a, 0, out, n, "scaleColumns", "out") || !get_f32(a, 1, x, nx, "scaleColumns", "x") || !get_f32(a, 2, v, nv, "scaleColumns", "v")) return nullptr;
  const double shift = get_num(a, 3);
  const int64_t N = get_int(a, 4), C = get_int(a, 5);
  if (static_cast<int64_t>(n) < N * C || static_cast<int64_t>(nx) < N * C || static_cast<int64_t>(nv) < C) { throw_type(env, "scaleColumns: an operand is too short"); return nullptr; }
  std::vector<float> f(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) f[c] = static_cast<float>(v[c] + shift);
  run_chunks(N, rows_grain(C), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r)
      for (int64_t c = 0; c < C; ++c) out[r * C + c] = f[c] * x[r * C + c];
  });
  return undefined(env);
}

// out[C] += alpha · (v ? v[c] + shift : 1) · Σ_n x[n,c]
napi_value ColumnSums(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *x, *v; size_t n, nx, nv;
  if (!get_f32(a, 0, out, n, "columnSums", "out") || !get_f32(a, 1, x, nx, "columnSums", "x") || !get_f32(a, 2, v, nv, "columnSums", "v", true)) return nullptr;
  const double shift = get_num(a, 3), alpha = get_num(a, 4);
  const int64_t N = get_int(a, 5), C = get_int(a, 6);
  if (static_cast<int64_t>(n) < C || static_cast<int64_t>(nx) < N * C || (v && static_cast<int64_t>(nv) < C)) { throw_type(env, "columnSums: an operand is too short"); return nullptr; }
  run_chunks(C, std::max<int64_t>(8, kRowGrain / std::max<int64_t>(1, N)), [&](int64_t b, int64_t e, int) {
    std::vector<double> s(static_cast<size_t>(e - b), 0.0);
    for (int64_t r = 0; r < N; ++r)
      for (int64_t c = b; c < e; ++c) s[c - b] += x[r * C + c];
    for (int64_t c = b; c < e; ++c) out[c] = static_cast<float>(out[c] + alpha * (v ? v[c] + shift : 1.0) * s[c - b]);
  });
  return undefined(env);
}

// out[C] += Σ_n a[n,c]·b[n,c] / div[c]
napi_value ColumnDots(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *x, *y, *d; size_t n, nx, ny, nd;
  if (!get_f32(a, 0, out, n, "columnDots", "out") || !get_f32(a, 1, x, nx, "columnDots", "a") || !get_f32(a, 2, y, ny, "columnDots", "b") || !get_f32(a, 3, d, nd, "columnDots", "div")) return nullptr;
  const int64_t N = get_int(a, 4), C = get_int(a, 5);
  if (static_cast<int64_t>(n) < C || static_cast<int64_t>(nd) < C || static_cast<int64_t>(nx) < N * C || static_cast<int64_t>(ny) < N * C) { throw_type(env, "columnDots: an operand is too short"); return nullptr; }
  run_chunks(C, std::max<int64_t>(8, kRowGrain / std::max<int64_t>(1, N)), [&](int64_t b, int64_t e, int) {
    std::vector<double> s(static_cast<size_t>(e - b), 0.0);
    for (int64_t r = 0; r < N; ++r)
      for (int64_t c = b; c < e; ++c) s[c - b] += static_cast<double>(x[r * C + c]) * y[r * C + c];
    for (int64_t c = b; c < e; ++c) out[c] = static_cast<float>(out[c] + s[c - b] / d[c]);
  });
  return undefined(env);
}

// DoRA's rescale (see Backend.doraCombine): out, P, wx|null, g, bias|null, N, O, biasDtype
napi_value DoraCombine(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *P, *wx, *g; size_t n, np, nw, ng, nb;
  const int bdt = static_cast<int>(get_int(a, 7, F32));
  const void* bias;
  if (!get_f32(a, 0, out, n, "doraCombine", "out") || !get_f32(a, 1, P, np, "doraCombine", "P") || !get_f32(a, 2, wx, nw, "doraCombine", "wx", true) ||
      !get_f32(a, 3, g, ng, "doraCombine", "g") || !get_storage(a, 4, bdt, bias, nb, "doraCombine", "bias", true)) return nullptr;
  const int64_t N = get_int(a, 5), O = get_int(a, 6);
  if (static_cast<int64_t>(n) < N * O || static_cast<int64_t>(np) < N * O || (wx && static_cast<int64_t>(nw) < N * O) || static_cast<int64_t>(ng) < O || (bias && static_cast<int64_t>(nb) < O)) {
    throw_type(env, "doraCombine: an operand is too short");
    return nullptr;
  }
  std::vector<float> b(static_cast<size_t>(O), 0.0f);
  if (bias) widen_into(b.data(), bias, bdt, 0, O);
  run_chunks(N, rows_grain(O), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      float *o = out + r * O, *p = P + r * O;
      if (wx) {
        const float* w = wx + r * O;
        for (int64_t c = 0; c < O; ++c) {
          const float v = p[c] + w[c];
          p[c] = v;
          o[c] = static_cast<float>(static_cast<double>(o[c]) + static_cast<double>(g[c]) * v - w[c]);
        }
      } else {
        for (int64_t c = 0; c < O; ++c) {
          const float v = static_cast<float>(static_cast<double>(p[c]) + o[c] - b[c]);
          p[c] = v;
          o[c] = static_cast<float>(static_cast<double>(g[c]) * v + b[c]);
        }
      }
    }
  });
  return undefined(env);
}

// out[o0 + j] = ‖W[o0 + j, :] + delta[j, :]‖: out, w, wDtype, transposed, delta|null, o0, rows, O, I
napi_value WeightRowNorms(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *delta; size_t n, nw, ndl;
  const int wdt = static_cast<int>(get_int(a, 2, F32));
  const void* w;
  if (!get_f32(a, 0, out, n, "weightRowNorms", "out") || !get_storage(a, 1, wdt, w, nw, "weightRowNorms", "w") || !get_f32(a, 4, delta, ndl, "weightRowNorms", "delta", true)) return nullptr;
  const bool tr = get_bool(a, 3);
  const int64_t o0 = get_int(a, 5), rows = get_int(a, 6), O = get_int(a, 7), I = get_int(a, 8);
  if (o0 < 0 || rows < 0 || o0 + rows > O || static_cast<int64_t>(n) < o0 + rows || static_cast<int64_t>(nw) < O * I || (delta && static_cast<int64_t>(ndl) < rows * I)) {
    throw_type(env, "weightRowNorms: an operand is too short");
    return nullptr;
  }
  if (!tr) {
    // rows of W are contiguous: one task per block of rows, each row widened into a buffer
    run_chunks(rows, std::max<int64_t>(1, kRowGrain / std::max<int64_t>(1, I)), [&](int64_t b, int64_t e, int) {
      std::vector<float> row(static_cast<size_t>(I));
      for (int64_t j = b; j < e; ++j) {
        widen_into(row.data(), w, wdt, (o0 + j) * I, I);
        double ss = 0;
        for (int64_t i = 0; i < I; ++i) {
          const double v = static_cast<double>(row[i]) + (delta ? delta[j * I + i] : 0.0f);
          ss += v * v;
        }
        out[o0 + j] = static_cast<float>(std::sqrt(ss));
      }
    });
    return undefined(env);
  }
  // W is [I, O] (Conv1D): walk its rows i, adding into one sum per output column
  std::vector<double> ss(static_cast<size_t>(rows), 0.0);
  std::vector<float> row(static_cast<size_t>(rows));
  for (int64_t i = 0; i < I; ++i) {
    widen_into(row.data(), w, wdt, i * O + o0, rows);
    for (int64_t j = 0; j < rows; ++j) {
      const double v = static_cast<double>(row[j]) + (delta ? delta[j * I + i] : 0.0f);
      ss[j] += v * v;
    }
  }
  for (int64_t j = 0; j < rows; ++j) out[o0 + j] = static_cast<float>(std::sqrt(ss[j]));
  return undefined(env);
}

// W[o, :] ·= num[o] / den[o]: w, num, den, transposed, O, I
napi_value ScaleWeightRows(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *w, *num, *den; size_t nw, nn, nd;
  if (!get_f32(a, 0, w, nw, "scaleWeightRows", "w") || !get_f32(a, 1, num, nn, "scaleWeightRows", "num") || !get_f32(a, 2, den, nd, "scaleWeightRows", "den")) return nullptr;
  const bool tr = get_bool(a, 3);
  const int64_t O = get_int(a, 4), I = get_int(a, 5);
  if (static_cast<int64_t>(nw) < O * I || static_cast<int64_t>(nn) < O || static_cast<int64_t>(nd) < O) { throw_type(env, "scaleWeightRows: an operand is too short"); return nullptr; }
  std::vector<double> f(static_cast<size_t>(O));
  for (int64_t o = 0; o < O; ++o) f[o] = static_cast<double>(num[o]) / den[o];
  const int64_t R = tr ? I : O, C = tr ? O : I;
  run_chunks(R, rows_grain(C), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      float* x = w + r * C;
      if (tr) for (int64_t c = 0; c < C; ++c) x[c] = static_cast<float>(x[c] * f[c]);
      else for (int64_t c = 0; c < C; ++c) x[c] = static_cast<float>(x[c] * f[r]);
    }
  });
  return undefined(env);
}

// the attention kernel's additive key-padding mask: out[B·S] = 0 where mask is 1, −∞ where 0
napi_value AdditiveMask(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float* out; size_t n;
  View mv;
  if (!get_f32(a, 0, out, n, "additiveMask", "out") || !get_view(a, 1, mv, "additiveMask", "mask")) return nullptr;
  if (mv.type != napi_uint8_array) { throw_type(env, "additiveMask: argument mask must be a Uint8Array"); return nullptr; }
  const uint8_t* mask = static_cast<const uint8_t*>(mv.data);
  const int64_t BS = get_int(a, 2) * get_int(a, 3);
  if (static_cast<int64_t>(mv.length) < BS || static_cast<int64_t>(n) < BS) { throw_type(env, "additiveMask: an operand is too short"); return nullptr; }
  for (int64_t i = 0; i < BS; ++i) out[i] = mask[i] ? 0.0f : -INFINITY;
  return undefined(env);
}

// out[B,T,S] = bias[B,T,S] + own ([B,T,S] or [B,S])
napi_value AddMasks(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *bias, *own; size_t n, nb, no;
  if (!get_f32(a, 0, out, n, "addMasks", "out") || !get_f32(a, 1, bias, nb, "addMasks", "bias") || !get_f32(a, 2, own, no, "addMasks", "own")) return nullptr;
  const int64_t B = get_int(a, 3), T = get_int(a, 4), S = get_int(a, 5);
  const bool full = static_cast<int64_t>(no) == B * T * S;
  if (static_cast<int64_t>(n) < B * T * S || static_cast<int64_t>(nb) < B * T * S || (!full && static_cast<int64_t>(no) < B * S)) { throw_type(env, "addMasks: an operand is too short"); return nullptr; }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = (b * T + t) * S;
      const float* o = full ? own + row : own + b * S;
      for (int64_t s = 0; s < S; ++s) out[row + s] = bias[row + s] + o[s];
    }
  return undefined(env);
}

// out = tanh(inp)
napi_value TanhForward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *out, *x; size_t n, nx;
  if (!get_f32(a, 0, out, n, "tanhForward", "out") || !get_f32(a, 1, x, nx, "tanhForward", "inp")) return nullptr;
  if (nx < n) { throw_type(env, "tanhForward: inp is shorter than out"); return nullptr; }
  run_chunks(static_cast<int64_t>(n), kRowGrain, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) out[i] = static_cast<float>(std::tanh(static_cast<double>(x[i])));
  });
  return undefined(env);
}

// dinp = dout · (1 − y²) (writes)
napi_value TanhBackward(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *dx, *y, *dy; size_t n, ny, nd;
  if (!get_f32(a, 0, dx, n, "tanhBackward", "dinp") || !get_f32(a, 1, y, ny, "tanhBackward", "y") || !get_f32(a, 2, dy, nd, "tanhBackward", "dout")) return nullptr;
  if (ny < n || nd < n) { throw_type(env, "tanhBackward: y or dout is shorter than dinp"); return nullptr; }
  run_chunks(static_cast<int64_t>(n), kRowGrain, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) dx[i] = static_cast<float>(dy[i] * (1.0 - static_cast<double>(y[i]) * y[i]));
  });
  return undefined(env);
}

// SGD (see Backend.sgd): param, grad, buf|null, lr, momentum, dampening, weightDecay, nesterov, first
napi_value Sgd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *w, *g, *buf; size_t n, ng, nb;
  if (!get_f32(a, 0, w, n, "sgd", "param") || !get_f32(a, 1, g, ng, "sgd", "grad") || !get_f32(a, 2, buf, nb, "sgd", "buf", true)) return nullptr;
  if (ng < n || (buf && nb < n)) { throw_type(env, "sgd: grad or buf is shorter than param"); return nullptr; }
  const double lr = get_num(a, 3), mu = get_num(a, 4), damp = get_num(a, 5), wd = get_num(a, 6);
  const bool nesterov = get_bool(a, 7), first = get_bool(a, 8);
  run_chunks(static_cast<int64_t>(n), kRowGrain, [&](int64_t b, int64_t e, int) {
    for (int64_t j = b; j < e; ++j) {
      double d = static_cast<double>(g[j]) + wd * w[j];
      if (buf) {
        buf[j] = static_cast<float>(first ? d : mu * buf[j] + (1 - damp) * d);
        d = nesterov ? d + mu * buf[j] : buf[j];
      }
      w[j] = static_cast<float>(w[j] - lr * d);
    }
  });
  return undefined(env);
}

}  // namespace

void RegisterRows(napi_env env, napi_value exports) {
  export_fn(env, exports, "sumRange", SumRange);
  export_fn(env, exports, "copy2d", Copy2d);
  export_fn(env, exports, "mul", Mul);
  export_fn(env, exports, "div", Div);
  export_fn(env, exports, "addRowVector", AddRowVector);
  export_fn(env, exports, "scaleColumns", ScaleColumns);
  export_fn(env, exports, "columnSums", ColumnSums);
  export_fn(env, exports, "columnDots", ColumnDots);
  export_fn(env, exports, "doraCombine", DoraCombine);
  export_fn(env, exports, "weightRowNorms", WeightRowNorms);
  export_fn(env, exports, "scaleWeightRows", ScaleWeightRows);
  export_fn(env, exports, "additiveMask", AdditiveMask);
  export_fn(env, exports, "addMasks", AddMasks);
  export_fn(env, exports, "tanhForward", TanhForward);
  export_fn(env, exports, "tanhBackward", TanhBackward);
  export_fn(env, exports, "sgd", Sgd);
}

}  // namespace lk
