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

// dtype codes; the order matches src/backend/native/ops.ts.
enum DType : int { F32 = 0, F64 = 1, I32 = 2, BOOL = 3 };

// Unary op codes, in the order of the UnaryOp union of src/backend/backend.ts.
enum UnaryOp : int {
  U_NEG, U_ABS, U_SIGN, U_EXP, U_LOG, U_LOG1P, U_EXPM1, U_SQRT, U_SIN, U_COS, U_TAN, U_TANH, U_SIGMOID, U_ERF,
  U_RELU, U_FLOOR, U_CEIL, U_ROUND, U_NOT, U_COUNT
};

// Binary op codes, in the order of the BinaryOp union.
enum BinaryOp : int {
  B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_AND, B_OR, B_XOR,
  B_COUNT
};

enum ReduceOp : int { R_SUM, R_PROD, R_MAX, R_MIN };
enum ActOp : int { A_RELU, A_TANH, A_SIGMOID, A_COUNT };

// A strided view: element (i0..in-1) is data[offset + sum(i_k * strides[k])], all counts in elements.
struct View {
  void* data;
  int dtype;
  int ndim;
  int64_t offset;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
};

// A contiguous output buffer.
struct Out {
  void* data;
  int dtype;
  int64_t length;
};

struct ConvParams {
  int64_t sh, sw, ph, pw, dh, dw, groups;
};

struct PoolParams {
  int64_t kh, kw, sh, sw, ph, pw;
};

struct AdamParams {
  double lr, beta1, beta2, eps, weight_decay, bc1, bc2_sqrt;
  bool decoupled, maximize;
};

// Every kernel returns nullptr on success or a static error message (unsupported dtype combination ...).
using Err = const char*;

// The kernel entry points of one instruction-set build. Semantics are those of the Backend interface.
struct Kernels {
  const char* isa;
  Err (*unary)(int op, const View& x, const Out& out);
  Err (*binary)(int op, const View& a, const View& b, const Out& out);
  Err (*where)(const View& c, const View& a, const View& b, const Out& out);
  Err (*cast)(const View& x, const Out& out);
  Err (*copy)(const View& src, const View& dst);
  Err (*reduce)(int op, const View& x, const int* axes, int naxes, const Out& out);
  Err (*arg_reduce)(int is_min, const View& x, int axis, const Out& out);
  Err (*cumsum)(const View& x, int axis, int reverse, const Out& out);
  Err (*dot)(const View& a, const View& b, const Out& out);
  // kind: 0 forward (x, w), 1 input gradient (dy, w), 2 weight gradient (x, dy). shape = shape of out.
  // The forward pass may end in an epilogue out = act(out + bias[o]): bias a 1-d view of O values or null,
  // act an ActOp or -1 for none.
  Err (*conv2d)(int kind, const View& p, const View& q, const Out& out, const int64_t* shape,
                const ConvParams& cp, const View* bias, int act);
  // kind: 0 max, 1 max argmax, 2 avg, 3 avg backward. shape = shape of out.
  Err (*pool2d)(int kind, const View& x, const Out& out, const int64_t* shape, const PoolParams& pp);
  // Transpose of max pooling at x: dy [N, C, OH, OW] -> out [N, C, H, W] (x's shape).
  Err (*max_pool2d_backward)(const View& x, const View& dy, const Out& out, const PoolParams& pp);
  // Indices are checked against their bound (a bad one: nothing written, note_bad_index, see pool.h); with
  // `shared` (idx lives in a SharedArrayBuffer another thread may change) each is checked as it is used.
  Err (*gather)(const View& x, int axis, const View& idx, const Out& out, int shared);
  Err (*scatter_add)(const View& src, int axis, const View& idx, const Out& out, const int64_t* shape, int shared);
  // One fused Adam/AdamW step in place (vmax may be null); g has the shape of the flat p, m, v.
  Err (*adam)(const Out& p, const View& g, const Out& m, const Out& v, const Out* vmax, const AdamParams& h);
  // Fused activations (act: ActOp). kind 0: out = act(x + b), b may be null; kind 1: out = b * act'(.) written
  // through x = act's output.
  Err (*activation)(int kind, int act, const View& x, const View* b, const Out& out);
  // Fused softmax (log = 0) or log-softmax (log = 1) along `axis`; out is contiguous with x's shape.
  Err (*softmax)(const View& x, int axis, int log, const Out& out);
  // Its VJP: y the softmax output, c the cotangent (same shape), out contiguous.
  Err (*softmax_backward)(const View& y, const View& c, int axis, int log, const Out& out);
};

const Kernels* kernels_avx512();
const Kernels* kernels_avx2();
const Kernels* kernels_base();

}  // namespace cr
