# node-gyp build of the chainrule native backend.
#
# The kernels (src/kernels/*.cc) are compiled three times, as three static libraries with different
# instruction-set flags and CR_ISA_LEVEL (2 = AVX-512, 1 = AVX2 + FMA, 0 = baseline x86-64); each build puts
# its code in its own namespace (see src/kernels/isa.h). The addon (src/addon.cc, src/pool.cc, baseline
# flags) links all three and picks one at run time with __builtin_cpu_supports.
{
  "variables": {
    "kernel_sources": [
      "src/kernels/elementwise.cc",
      "src/kernels/fused.cc",
      "src/kernels/reduce.cc",
      "src/kernels/dot.cc",
      "src/kernels/conv.cc",
      "src/kernels/pool2d.cc",
      "src/kernels/indexing.cc",
      "src/kernels/optim.cc",
      "src/kernels/softmax.cc",
      "src/kernels/norm.cc",
      "src/kernels/attention.cc",
      "src/kernels/rnn_cell.cc",
      "src/kernels/half.cc",
      "src/kernels/table.cc"
    ],
    "common_cflags": ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-std=gnu++17", "-fno-exceptions", "-fno-rtti", "-Wno-unused-parameter"]
  },
  "target_defaults": {
    "cflags!": ["-O2", "-O0", "-fno-omit-frame-pointer"],
    "cflags_cc!": ["-O2", "-O0", "-std=gnu++14", "-std=gnu++1y", "-std=gnu++17"],
    "cflags": ["<@(common_cflags)"],
    "cflags_cc": ["-std=gnu++17"],
    "xcode_settings": { "OTHER_CFLAGS": ["-O3"] }
  },
  "targets": [
    {
      "target_name": "kernels_avx512",
      "type": "static_library",
      "sources": ["<@(kernel_sources)"],
      "defines": ["CR_ISA_LEVEL=2"],
      "cflags": ["-mavx512f", "-mavx512dq", "-mavx2", "-mfma"]
    },
    {
      "target_name": "kernels_avx2",
      "type": "static_library",
      "sources": ["<@(kernel_sources)"],
      "defines": ["CR_ISA_LEVEL=1"],
      "cflags": ["-mavx2", "-mfma"]
    },
    {
      "target_name": "kernels_base",
      "type": "static_library",
      "sources": ["<@(kernel_sources)"],
      "defines": ["CR_ISA_LEVEL=0"]
    },
    {
      "target_name": "chainrule_native",
      "sources": ["src/addon.cc", "src/pool.cc"],
      "dependencies": ["kernels_avx512", "kernels_avx2", "kernels_base"],
      "libraries": ["-lpthread"]
    }
  ],
  # The MPI binding (src/mpi, chainrule_mpi.node): a separate addon, so the kernel addon never links libmpi;
  # configured only where src/mpi/config.mjs finds MPI headers and libmpi (distributed.initProcessGroup loads it).
  "conditions": [
    ["<!(node src/mpi/config.mjs found)==1", {
      "targets": [
        {
          "target_name": "chainrule_mpi",
          "sources": ["src/mpi/mpi_addon.cc"],
          "cflags": ["<!@(node src/mpi/config.mjs cflags)"],
          "libraries": ["<!@(node src/mpi/config.mjs libs)", "-lpthread", "-ldl"]
        }
      ]
    }]
  ]
}
