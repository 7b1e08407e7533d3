// Shared declarations of the chainrule native backend: dtype codes, op codes, the strided view descriptor the
// N-API layer fills from JavaScript, and the table of kernel entry points that each instruction-set build
// (AVX-512, AVX2, baseline x86-64) provides.
//
// This header is included by translation units compiled with different -m flags. It must therefore contain
// only plain data types and declarations: an inline function defined here would be compiled once per ISA and
// the linker would keep an arbitrary copy (possibly the AVX-512 one) for every caller.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cr {

constexpr int kMaxDims = 32;

// dtype codes; the order matches code() in src/backend/native/backend.ts.
enum DType : int { F32 = 0, F64 = 1, I32 = 2, BOOL = 3 };

// Op codes, from kernels.def (the TypeScript side takes the names from the addon, so it needs no copy).
enum UnaryOp : int {
#define CR_UNARY(code, js) code,
#include "kernels.def"
  U_COUNT
};
enum BinaryOp : int {
#define CR_BINARY(code, js) code,
#include "kernels.def"
  B_COUNT
};
enum ReduceOp : int {
#define CR_REDUCE(code, js) code,
#include "kernels.def"
  R_COUNT
};
enum ActOp : int {
#define CR_ACT(code, js) code,
#include "kernels.def"
  A_COUNT
};

// A strided view: element (i0..in-1) is data[offset + sum(i_k * strides[k])], all counts in elements.
struct View {
  void* data;
  int dtype;
  int ndim;
  int64_t offset;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
};

// A list of views (a layout's `views[#]`, see kernels.def): n of them, each checked like any other view.
constexpr int kMaxListViews = 64;
struct Views {
  int n;
  const View* v;
};

// A contiguous output buffer.
struct Out {
  void* data;
  int dtype;
  int64_t length;
};

// Parameter structs, filled by addon.cc from consecutive numbers of a family's meta layout (their members, all
// of type Member, in the layout's order: stride[2] padding[2] dilation[2] groups gives sh, sw, ph, pw, dh ...).
struct ConvParams {
  using Member = int64_t;
  int64_t sh, sw, ph, pw, dh, dw, groups;
};

struct PoolParams {
  using Member = int64_t;
  int64_t kh, kw, sh, sw, ph, pw;
};

struct AdamParams {
  using Member = double;
  double lr, beta1, beta2, eps, weight_decay, decoupled, maximize, bc1, bc2_sqrt;  // decoupled, maximize: 0 or 1
};

struct AttnParams {
  using Member = double;
  double scale;  // multiplies q k^T (attention, attention_backward)
};

struct NormParams {
  using Member = double;
  double eps;  // added to the variance (layer_norm)
};

// Every kernel returns nullptr on success or a static error message (unsupported dtype combination ...).
using Err = const char*;

// The kernel entry points of one instruction-set build, one member per CR_KERNEL of kernels.def (whose comments
// give each family's `kind` codes). Semantics are those of the Backend interface.
struct Kernels {
  const char* isa;
#define CR_KERNEL(name, js, params, serves, meta) Err(*name) params;
#include "kernels.def"
};

const Kernels* kernels_avx512();
const Kernels* kernels_avx2();
const Kernels* kernels_base();

}  // namespace cr
