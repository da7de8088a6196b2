// Convolution as GEMM: patch extraction (im2col) and its scatter-add backward (col2im).
// Letters: B batch, C channels, H, W image size, KH, KW kernel, SH, SW strides,
// OH = (H - KH)/SH + 1, OW = (W - KW)/SW + 1 (floor). The shapes arrive as one
// Float64Array [B, C, H, W, KH, KW, SH, SW]; the caller (src/backend/native) checked them.
#include <cstdint>
#include <cstring>

#include "napi_util.h"
#include "threadpool.h"

namespace lk {
namespace {

struct Patch {
  int64_t B, C, H, W, KH, KW, SH, SW, OH, OW;
};

bool read_patch(Args& a, size_t i, Patch& p, const char* fn) {
  View v;
  if (!get_view(a, i, v, fn, "dims")) return false;
  if (v.type != napi_float64_array || v.length != 8) {
    throw_type(a.env, std::string(fn) + ": dims must be a Float64Array of 8 numbers [B, C, H, W, KH, KW, SH, SW]");
    return false;
  }
  const double* d = static_cast<const double*>(v.data);
  p.B = (int64_t)d[0]; p.C = (int64_t)d[1]; p.H = (int64_t)d[2]; p.W = (int64_t)d[3];
  p.KH = (int64_t)d[4]; p.KW = (int64_t)d[5]; p.SH = (int64_t)d[6]; p.SW = (int64_t)d[7];
  p.OH = (p.H - p.KH) / p.SH + 1;
  p.OW = (p.W - p.KW) / p.SW + 1;
  return true;
}

// cols[B·OH·OW, C·KH·KW] = patches of img[B, C, H, W], columns (c, kh, kw); writes.
// Tasks: one per (b, oh) row of patches.
napi_value Im2col(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *cols, *img;
  size_t nc, ni;
  Patch p;
  if (!get_f32(a, 0, cols, nc, "im2col", "cols") || !get_f32(a, 1, img, ni, "im2col", "img") || !read_patch(a, 2, p, "im2col")) return nullptr;
  const int64_t K = p.C * p.KH * p.KW;
  parallel_for((int)(p.B * p.OH), [&](int task, int) {
    const int64_t b = task / p.OH, oh = task % p.OH;
    for (int64_t ow = 0; ow < p.OW; ow++) {
      float* row = cols + ((b * p.OH + oh) * p.OW + ow) * K;
      for (int64_t c = 0; c < p.C; c++)
        for (int64_t kh = 0; kh < p.KH; kh++)
          std::memcpy(row + (c * p.KH + kh) * p.KW, img + ((b * p.C + c) * p.H + oh * p.SH + kh) * p.W + ow * p.SW, sizeof(float) * p.KW);
    }
  });
  return undefined(env);
}

// dimg[B, C, H, W] += dcols scattered back. Tasks: one per (b, c) plane, so overlapping
// patches (SH < KH) never race: every write to a plane comes from its own task.
napi_value Col2im(napi_env env, napi_callback_info info) {
  Args a(env, info);
  float *dimg, *dcols;
  size_t ni, nc;
  Patch p;
  if (!get_f32(a, 0, dimg, ni, "col2im", "dimg") || !get_f32(a, 1, dcols, nc, "col2im", "dcols") || !read_patch(a, 2, p, "col2im")) return nullptr;
  const int64_t K = p.C * p.KH * p.KW;
  parallel_for((int)(p.B * p.C), [&](int task, int) {
    const int64_t b = task / p.C, c = task % p.C;
    float* plane = dimg + (b * p.C + c) * p.H * p.W;
    for (int64_t oh = 0; oh < p.OH; oh++)
      for (int64_t ow = 0; ow < p.OW; ow++) {
        const float* src = dcols + ((b * p.OH + oh) * p.OW + ow) * K + c * p.KH * p.KW;
        for (int64_t kh = 0; kh < p.KH; kh++) {
          float* dst = plane + (oh * p.SH + kh) * p.W + ow * p.SW;
          const float* s = src + kh * p.KW;
          for (int64_t kw = 0; kw < p.KW; kw++) dst[kw] += s[kw];
        }
      }
  });
  return undefined(env);
}

}  // namespace

void RegisterConv(napi_env env, napi_value exports) {
  export_fn(env, exports, "im2col", Im2col);
  export_fn(env, exports, "col2im", Col2im);
}

}  // namespace lk
