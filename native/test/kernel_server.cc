// The kernels as a process, for testing builds that cannot load into Node: the ARM64 NEON
// build runs under qemu-aarch64 on x86 (tests/unit/kernels-neon.test.ts). It serves kernel
// calls over two files (FIFOs), so the TypeScript kernel comparisons run against it as
// against the native addon (tests/helpers/kernel-server.ts has the other side).
//
//   kernel_server <requests> <replies>
// On start it writes the kernel names, then the GEMM kernel set's name:
//   u32 count, count × (u32 length, bytes), u32 length, bytes
// A request: u32 kernel (0xffffffff: exit), u32 argc, argc × argument:
//   i32 kind (napi_valuetype), i32 typed-array type, u64 bytes, f64 number, then the bytes;
//   bytes = 2^64 − 1 marks an array passed again (aliased): number is the earlier argument
// A reply: u32 status (0 returned, 1 threw), f64 result, u32 length + the error message,
// then the bytes of every typed-array argument as the kernel left them.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../src/napi_shim.h"

extern "C" {
int lk_init();
const char* lk_fn_name(int i);
int lk_call(int i, int argc, lk_shim_value* argv);
const char* lk_error();
double lk_result();
const char* lk_impl();
}

namespace {
FILE* in;
FILE* out;
void rd(void* p, size_t n) {
  if (n && std::fread(p, 1, n, in) != n) std::exit(0);  // the test closed the pipe
}
void wr(const void* p, size_t n) {
  if (n) std::fwrite(p, 1, n, out);
}
void wr_str(const char* s) {
  const std::string str(s);
  const uint32_t n = static_cast<uint32_t>(str.size());
  wr(&n, 4);
  wr(str.data(), n);
}
size_t elem_size(int ta) {
  switch (ta) {
    case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: return 1;
    case napi_int16_array: case napi_uint16_array: return 2;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: return 8;
    default: return 4;
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: kernel_server <requests> <replies>\n");
    return 2;
  }
  in = std::fopen(argv[1], "rb");
  out = std::fopen(argv[2], "wb");
  if (!in || !out) {
    std::fprintf(stderr, "kernel_server: cannot open %s or %s\n", argv[1], argv[2]);
    return 2;
  }
  const int n = lk_init();
  const uint32_t count = static_cast<uint32_t>(n);
  wr(&count, 4);
  for (int i = 0; i < n; ++i) wr_str(lk_fn_name(i));
  wr_str(lk_impl());
  std::fflush(out);
  std::vector<lk_shim_value> args;
  std::vector<std::vector<uint64_t>> bufs;  // 8-byte aligned storage for the arrays
  for (;;) {
    uint32_t fn, nargs;
    rd(&fn, 4);
    if (fn == 0xffffffffu) return 0;
    rd(&nargs, 4);
    args.assign(nargs, lk_shim_value{});
    bufs.resize(nargs);
    for (uint32_t a = 0; a < nargs; ++a) {
      int32_t kind, ta;
      uint64_t bytes;
      double num;
      rd(&kind, 4);
      rd(&ta, 4);
      rd(&bytes, 8);
      rd(&num, 8);
      if (kind == napi_object && bytes == ~uint64_t{0}) {  // the same array as argument `num`
        args[a] = args[static_cast<size_t>(num)];
        args[a].kind = -1;  // marked so its bytes are not sent back twice; restored below
        continue;
      }
      bufs[a].assign((bytes + 7) / 8 + 1, 0);
      rd(bufs[a].data(), bytes);
      const bool is_array = kind == napi_object;
      args[a] = {kind, ta, is_array ? static_cast<void*>(bufs[a].data()) : nullptr,
                 is_array ? static_cast<size_t>(bytes / elem_size(ta)) : 0, num};
    }
    std::vector<bool> alias(nargs, false);
    for (uint32_t a = 0; a < nargs; ++a)
      if (args[a].kind == -1) {
        alias[a] = true;
        args[a].kind = napi_object;
      }
    const uint32_t status = static_cast<uint32_t>(lk_call(static_cast<int>(fn), static_cast<int>(nargs), args.data()));
    const double result = lk_result();
    wr(&status, 4);
    wr(&result, 8);
    wr_str(status ? lk_error() : "");
    for (uint32_t a = 0; a < nargs; ++a)
      if (args[a].kind == napi_object && !alias[a]) wr(bufs[a].data(), args[a].length * elem_size(args[a].ta_type));
    std::fflush(out);
  }
}
