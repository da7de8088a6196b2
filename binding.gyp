{
  "targets": [
    {
      "target_name": "lorakit",
      "sources": [
        "native/src/addon.cc",
        "native/src/cpu.cc",
        "native/src/threadpool.cc",
        "native/src/gemm.cc",
        "native/src/gemm_simd.cc",
        "native/src/gemv.cc",
        "native/src/gemm_amx.cc",
        "native/src/attention_amx.cc",
        "native/src/napi_gemm.cc",
        "native/src/gemm_avx2.cc",
        "native/src/ops.cc",
        "native/src/ops_attention.cc",
        "native/src/conv.cc",
        "native/src/ops_rows.cc"
      ],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions", "-Wall", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-rtti", "-O2"],
      "cflags!": ["-O2"],
      "ldflags": ["-pthread"]
    }
  ]
}
