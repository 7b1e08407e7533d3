// N-API entry points of the chainrule native backend (plain C N-API, no node-addon-api).
//
// Calling convention, chosen to keep the per-call cost low: typed arrays are passed as arguments and used in
// place (napi_get_typedarray_info gives their data pointer, nothing is copied); shapes, strides, offsets and
// small parameters are written by JavaScript into one preallocated Float64Array (the "meta" buffer handed over
// once by init()) and read here sequentially, so a call allocates nothing on either side.
// Meta layout per view: dtype code, offset, ndim, shape[ndim], strides[ndim]; per output: dtype code; then
// the op's extra numbers, in the order each entry point reads them.
//
// Every view is bounds-checked against its typed array before a kernel runs, so a wrong shape from
// JavaScript raises an exception instead of reading out of bounds. The backend object is public, so nothing
// read from the meta buffer is trusted: every number must be an integer of magnitude below 2^53 (the largest a
// double carries exactly), every view's element count (of its non-zero extents, so that any partial product a
// kernel forms fits too) at most kMaxElements = 2^48 (MAX_NUMEL of src/shape.ts), spans are computed in
// 128 bits, and indices handed to gather / scatterAdd are checked in one pass before the kernel runs.
//
// Threads: every JavaScript thread (the main thread and each worker_thread) calls into the same process-global
// kernels, pool and scratch buffers (the addon is loaded once per process; each worker only gets its own
// instance data). Scratch buffers are keyed by pool thread id and every JavaScript caller is id 0 of the pool,
// so two concurrent calls would share (and reallocate under each other) the same buffers. g_call_mu therefore
// makes one kernel call at a time own the pool and all scratch: the kernels already use every core, so
// serialising whole calls loses no throughput, and it costs one uncontended mutex per call (~10 ns: a
// 16-element unary call went from ~105 to ~115 ns), where per-caller scratch would need every kernel to thread
// a caller id through, would still oversubscribe the cores, and would leave the pool itself shared.
#define NAPI_VERSION 8
#include <node_api.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common.h"
#include "pool.h"

namespace cr {
namespace {

struct Instance {
  napi_ref meta_ref = nullptr;
  const double* meta = nullptr;
  size_t meta_len = 0;
};

const Kernels* g_kernels = nullptr;

// Serialises kernel calls (and thread-count / ISA changes) between JavaScript threads; see the header.
std::mutex g_call_mu;

// The largest integer the meta buffer may carry: 2^53 - 1, JavaScript's Number.MAX_SAFE_INTEGER.
constexpr int64_t kMaxInt = (int64_t(1) << 53) - 1;
// The largest element count of any view or output: 2^48, the library's limit for any tensor or view (MAX_NUMEL
// in src/shape.ts). Larger counts cannot reach a real buffer (only broadcast views describe them); they would
// overflow the kernels' 64-bit products (2^32 x 2^32 wrapped to 0) or loop for days.
constexpr int64_t kMaxElements = int64_t(1) << 48;
// Bound on strides, paddings, dilations and kernel extents of conv2d / pooling.
constexpr int64_t kMaxParam = int64_t(1) << 31;

const Kernels* best_kernels() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return kernels_avx512();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kernels_avx2();
#endif
  return kernels_base();
}

// ---------------------------------------------------------------------------------------------------------
// Argument decoding. A Call collects everything; on the first problem it records a message and the entry
// point throws it.
struct Call {
  napi_env env;
  napi_value argv[8];
  size_t argc = 8;
  const double* meta = nullptr;
  size_t meta_len = 0;
  size_t pos = 0;
  const char* op;
  char err[320];
  bool range = false;  // throw a RangeError (bad index) rather than an Error

  Call(napi_env e, napi_callback_info info, const char* name) : env(e), op(name) {
    err[0] = 0;
    void* data = nullptr;
    if (napi_get_cb_info(env, info, &argc, argv, nullptr, &data) != napi_ok) fail("bad call");
    Instance* inst = nullptr;
    napi_get_instance_data(env, reinterpret_cast<void**>(&inst));
    if (!inst || !inst->meta) fail("init() was not called");
    else {
      meta = inst->meta;
      meta_len = inst->meta_len;
    }
  }

  bool ok() const { return err[0] == 0; }

  // Record the first problem (printf-style message, prefixed with the op).
  __attribute__((format(printf, 2, 3))) void fail(const char* fmt, ...) {
    if (!ok()) return;
    int n = std::snprintf(err, sizeof(err), "native %s: ", op);
    if (n < 0 || n >= (int)sizeof(err)) return;
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(err + n, sizeof(err) - n, fmt, ap);
    va_end(ap);
  }

  // The next meta number as an integer (a count, stride, offset, axis or parameter named `what`); anything
  // else (NaN, a fraction, beyond 2^53) fails, since casting it to int64 would be undefined or would wrap.
  int64_t inum(const char* what) {
    const double v = num();
    // (the range test first makes the cast defined; the cast back tests integrality without a libm call)
    if (!(v >= -(double)kMaxInt && v <= (double)kMaxInt) || (double)(int64_t)v != v) {
      fail("%s must be an integer of magnitude below 2^53, got %g", what, v);
      return 0;
    }
    return (int64_t)v;
  }

  // The next meta number as an integer in [lo, hi] (an axis, a count of axes, a flag ...).
  int64_t inum_in(const char* what, int64_t lo, int64_t hi) {
    const int64_t v = inum(what);
    if (ok() && (v < lo || v > hi)) fail("%s must be in [%lld, %lld], got %lld", what, (long long)lo, (long long)hi, (long long)v);
    return ok() ? v : lo;
  }

  // a * b for counts already known to be in [0, kMaxElements]; fails (naming `what`) beyond kMaxElements.
  int64_t mul(int64_t a, int64_t b, const char* what) {
    const __int128 p = (__int128)a * b;
    if (p > kMaxElements) {
      fail("%s has more than 2^48 elements (the limit for any tensor or view)", what);
      return 0;
    }
    return (int64_t)p;
  }

  double num() {
    if (pos >= meta_len) {
      fail("meta buffer overrun");
      return 0;
    }
    return meta[pos++];
  }

  int32_t int_arg(size_t i) {
    int32_t v = 0;
    if (i >= argc || napi_get_value_int32(env, argv[i], &v) != napi_ok) fail("expected an integer argument");
    return v;
  }

  // Typed array argument i: data pointer and element count; its dtype code comes from the meta buffer.
  // (Asking N-API for the array type costs a chain of eleven type tests, about a quarter of a small call;
  // the JavaScript side knows the type and writes it, see src/backend/native/backend.ts.)
  bool array(size_t i, void** data, int* dtype, int64_t* length) {
    size_t len = 0;
    void* d = nullptr;
    const double code = num();
    if (i >= argc || napi_get_typedarray_info(env, argv[i], nullptr, &len, &d, nullptr, nullptr) != napi_ok) {
      fail("expected a typed array argument");
      return false;
    }
    if (!(code >= 0 && code <= 3)) {
      fail("bad dtype code");
      return false;
    }
    *dtype = (int)code;
    *data = d;
    *length = (int64_t)len;
    return true;
  }

  // View from typed array argument i and the next meta entries; checks that it stays inside the array.
  void view(size_t i, View& v) {
    int64_t len = 0;
    v.ndim = 0;
    if (!array(i, &v.data, &v.dtype, &len)) return;
    v.offset = inum("a view offset");
    const double nd = num();
    if (!(nd >= 0 && nd <= kMaxDims) || (double)(int)nd != nd) {
      fail("rank must be an integer between 0 and 32, got %g", nd);
      return;
    }
    v.ndim = (int)nd;
    bool empty = false;
    int64_t count = 1;  // product of the non-zero extents
    for (int d = 0; d < v.ndim; d++) {
      v.shape[d] = inum("a dimension");
      if (v.shape[d] < 0) fail("negative dimension %lld", (long long)v.shape[d]);
      if (v.shape[d] == 0) empty = true;
      else if (ok()) count = mul(count, v.shape[d], "a view");
    }
    for (int d = 0; d < v.ndim; d++) v.strides[d] = inum("a stride");
    if (!ok()) {
      v.ndim = 0;
      return;
    }
    if (empty) return;
    __int128 lo = v.offset, hi = v.offset;
    for (int d = 0; d < v.ndim; d++) {
      const __int128 span = (__int128)(v.shape[d] - 1) * v.strides[d];
      if (span < 0) lo += span;
      else hi += span;
    }
    if (lo < 0 || hi >= len)
      fail("view reaches outside its buffer (elements %lld..%lld of %lld; shape/strides/offset inconsistent with "
           "length)",
           (long long)(lo < INT64_MIN ? INT64_MIN : (int64_t)lo), (long long)(hi > INT64_MAX ? INT64_MAX : (int64_t)hi),
           (long long)len);
  }

  // Pooling parameters: kernel extents, strides and paddings.
  void pool_params(PoolParams& pp) {
    pp.kh = inum_in("kernel size", 1, kMaxParam), pp.kw = inum_in("kernel size", 1, kMaxParam);
    pp.sh = inum_in("stride", 1, kMaxParam), pp.sw = inum_in("stride", 1, kMaxParam);
    pp.ph = inum_in("padding", 0, kMaxParam), pp.pw = inum_in("padding", 0, kMaxParam);
  }

  // Whether typed array argument i lives in a SharedArrayBuffer (which another thread may change while a
  // kernel runs: the index kernels then check each index as they use it rather than in a pass before).
  int shared(size_t i) {
    napi_value ab;
    bool plain = false;
    if (napi_get_typedarray_info(env, argv[i], nullptr, nullptr, nullptr, &ab, nullptr) != napi_ok ||
        napi_is_arraybuffer(env, ab, &plain) != napi_ok)
      return 1;
    return plain ? 0 : 1;
  }

  void fail_index(int64_t v, int64_t bound, int axis) {
    fail("index %lld is out of bounds for axis %d of size %lld (expected 0 <= index < %lld)", (long long)v, axis,
         (long long)bound, (long long)bound);
    range = true;
  }

  // Contiguous output argument i holding at least `need` elements.
  void out(size_t i, Out& o, int64_t need) {
    if (!array(i, &o.data, &o.dtype, &o.length)) return;
    if (o.length < need)
      fail("output buffer is too small (%lld elements, %lld needed)", (long long)o.length, (long long)need);
  }

  // Throw the recorded problem, if any (no kernel ran).
  napi_value finish(Err e) {
    if (e) fail("%s", e);
    if (!ok()) {
      if (range) napi_throw_range_error(env, nullptr, err);
      else napi_throw_error(env, nullptr, err);
    }
    return nullptr;
  }

  // Run a kernel while owning the pool and the scratch buffers (g_call_mu, see the header), then throw its
  // error or a scratch allocation failure.
  // For gather / scatterAdd, `bound` is the extent along `axis` that indices must stay below.
  template <class F>
  napi_value run(F&& kernel, int64_t bound = 0, int axis = 0) {
    if (!ok()) return finish(nullptr);
    Err e;
    bool oom, bad;
    int64_t bad_value = 0;
    {
      std::lock_guard<std::mutex> lock(g_call_mu);
      e = kernel();
      oom = scratch_failed();  // both clear their flag, so the next call starts clean
      bad = take_bad_index(&bad_value);
    }
    if (bad) fail_index(bad_value, bound, axis);
    if (oom) fail("out of memory (scratch buffers)");
    return finish(e);
  }
};

// Element count of a checked view (at most kMaxElements, so the product cannot overflow).
int64_t view_size(const View& v) {
  int64_t n = 1;
  for (int d = 0; d < v.ndim; d++) n *= v.shape[d];
  return n;
}

// ---------------------------------------------------------------------------------------------------------
napi_value entry_unary(napi_env env, napi_callback_info info) {
  Call c(env, info, "unary");
  const int op = c.int_arg(0);
  View x;
  Out o;
  c.view(1, x);
  c.out(2, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->unary(op, x, o); });
}

napi_value entry_binary(napi_env env, napi_callback_info info) {
  Call c(env, info, "binary");
  const int op = c.int_arg(0);
  View a, b;
  Out o;
  c.view(1, a);
  c.view(2, b);
  c.out(3, o, c.ok() ? view_size(a) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->binary(op, a, b, o); });
}

napi_value entry_where(napi_env env, napi_callback_info info) {
  Call c(env, info, "where");
  View k, a, b;
  Out o;
  c.view(0, k);
  c.view(1, a);
  c.view(2, b);
  c.out(3, o, c.ok() ? view_size(k) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->where(k, a, b, o); });
}

// activation(kind, act, x, b | null, out): kind 0 out = act(x + b), kind 1 out = b * act'(x = act's output).
napi_value entry_activation(napi_env env, napi_callback_info info) {
  Call c(env, info, "activation");
  const int kind = c.int_arg(0), act = c.int_arg(1);
  View x, b;
  Out o;
  c.view(2, x);
  napi_valuetype bt = napi_null;
  if (c.argc > 3) napi_typeof(env, c.argv[3], &bt);
  const bool has_b = bt != napi_null && bt != napi_undefined;
  if (has_b) c.view(3, b);
  c.out(4, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->activation(kind, act, x, has_b ? &b : nullptr, o); });
}

napi_value entry_cast(napi_env env, napi_callback_info info) {
  Call c(env, info, "cast");
  View x;
  Out o;
  c.view(0, x);
  c.out(1, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->cast(x, o); });
}

napi_value entry_copy(napi_env env, napi_callback_info info) {
  Call c(env, info, "copy");
  View s, d;
  c.view(0, s);
  c.view(1, d);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->copy(s, d); });
}

napi_value entry_reduce(napi_env env, napi_callback_info info) {
  Call c(env, info, "reduce");
  const int op = c.int_arg(0);
  View x;
  Out o;
  c.view(1, x);
  int axes[kMaxDims];
  const int naxes = (int)c.inum_in("the number of axes", 0, kMaxDims);
  // The output holds the product of the kept extents (computed directly: dividing the element count by the
  // reduced extents would give 0 for an empty reduced axis while the kernel still writes every kept element).
  bool reduced[kMaxDims] = {false};
  for (int i = 0; c.ok() && i < naxes; i++) {
    axes[i] = (int)c.inum_in("an axis", 0, x.ndim - 1);
    if (c.ok()) reduced[axes[i]] = true;
  }
  int64_t kept = 1;
  for (int d = 0; c.ok() && d < x.ndim; d++)
    if (!reduced[d]) kept *= x.shape[d];  // a sub-product of a checked view's extents: no overflow
  c.out(2, o, kept);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->reduce(op, x, axes, naxes, o); });
}

napi_value entry_arg_reduce(napi_env env, napi_callback_info info) {
  Call c(env, info, "argReduce");
  const int is_min = c.int_arg(0);
  View x;
  Out o;
  c.view(1, x);
  const int axis = (int)c.inum_in("axis", 0, x.ndim > 0 ? x.ndim - 1 : 0);
  int64_t kept = 1;  // the extents off the axis (see Reduce)
  for (int d = 0; c.ok() && d < x.ndim; d++)
    if (d != axis) kept *= x.shape[d];
  c.out(2, o, kept);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->arg_reduce(is_min, x, axis, o); });
}

napi_value entry_cumsum(napi_env env, napi_callback_info info) {
  Call c(env, info, "cumsum");
  View x;
  Out o;
  c.view(0, x);
  const int axis = (int)c.inum_in("axis", 0, x.ndim > 0 ? x.ndim - 1 : 0);
  const int reverse = (int)c.inum_in("reverse", 0, 1);
  c.out(1, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->cumsum(x, axis, reverse, o); });
}

napi_value entry_dot(napi_env env, napi_callback_info info) {
  Call c(env, info, "dot");
  View a, b;
  Out o;
  c.view(0, a);
  c.view(1, b);
  int64_t need = 0;  // batch * M * N
  if (c.ok() && a.ndim >= 2 && b.ndim == a.ndim) {
    need = b.shape[b.ndim - 1];
    for (int d = 0; d < a.ndim - 1; d++) need = c.mul(need, a.shape[d], "the product");
  }
  c.out(2, o, need);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->dot(a, b, o); });
}

napi_value entry_conv2d(napi_env env, napi_callback_info info) {
  Call c(env, info, "conv2d");
  const int kind = c.int_arg(0);
  View p, q;
  Out o;
  c.view(1, p);
  c.view(2, q);
  int64_t shape[4];
  int64_t need = 1;
  for (int i = 0; i < 4; i++) {
    shape[i] = c.inum_in("an output dimension", 0, kMaxElements);
    need = c.mul(need, shape[i], "the output");
  }
  // Bounds on the parameters keep every index product of the kernels inside int64 (2^31 * 2^48 < 2^80 is
  // formed only in 128 bits, see conv_impl); meaningful values are far smaller.
  ConvParams cp;
  cp.sh = c.inum_in("stride", 1, kMaxParam), cp.sw = c.inum_in("stride", 1, kMaxParam);
  cp.ph = c.inum_in("padding", 0, kMaxParam), cp.pw = c.inum_in("padding", 0, kMaxParam);
  cp.dh = c.inum_in("dilation", 1, kMaxParam), cp.dw = c.inum_in("dilation", 1, kMaxParam);
  cp.groups = c.inum_in("groups", 1, kMaxElements);
  // optional epilogue: argument 4 the bias array (or null) with its view in the meta buffer, then the act code
  View b;
  napi_valuetype bt = napi_null;
  if (c.argc > 4) napi_typeof(env, c.argv[4], &bt);
  const bool has_b = bt != napi_null && bt != napi_undefined;
  if (has_b) c.view(4, b);
  const int act = (int)c.inum_in("activation code", -1, A_COUNT - 1);
  c.out(3, o, need);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->conv2d(kind, p, q, o, shape, cp, has_b ? &b : nullptr, act); });
}

napi_value entry_pool2d(napi_env env, napi_callback_info info) {
  Call c(env, info, "pool2d");
  const int kind = c.int_arg(0);
  View x;
  Out o;
  c.view(1, x);
  int64_t shape[4];
  int64_t need = 1;
  for (int i = 0; i < 4; i++) {
    shape[i] = c.inum_in("an output dimension", 0, kMaxElements);
    need = c.mul(need, shape[i], "the output");
  }
  PoolParams pp;
  c.pool_params(pp);
  c.out(2, o, need);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->pool2d(kind, x, o, shape, pp); });
}

// maxPool2dBackward(x, dy, out): meta = x view, dy view, kh, kw, sh, sw, ph, pw, out's dtype code.
napi_value entry_max_pool2d_backward(napi_env env, napi_callback_info info) {
  Call c(env, info, "maxPool2dBackward");
  View x, dy;
  Out o;
  c.view(0, x);
  c.view(1, dy);
  PoolParams pp;
  c.pool_params(pp);
  c.out(2, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->max_pool2d_backward(x, dy, o, pp); });
}

napi_value entry_gather(napi_env env, napi_callback_info info) {
  Call c(env, info, "gather");
  View x, idx;
  Out o;
  c.view(0, x);
  c.view(1, idx);
  const int axis = (int)c.inum_in("axis", 0, x.ndim > 0 ? x.ndim - 1 : 0);
  c.out(2, o, c.ok() ? view_size(idx) : 0);
  if (!c.ok()) return c.finish(nullptr);
  // The kernel checks the indices (0 <= index < x.shape[axis]) and reports a bad one, thrown here.
  const int shared = c.ok() ? c.shared(1) : 0;
  return c.run([&] { return g_kernels->gather(x, axis, idx, o, shared); }, x.ndim > 0 ? x.shape[axis] : 1, axis);
}

napi_value entry_scatter_add(napi_env env, napi_callback_info info) {
  Call c(env, info, "scatterAdd");
  View src, idx;
  Out o;
  c.view(0, src);
  c.view(1, idx);
  const int axis = (int)c.inum_in("axis", 0, src.ndim > 0 ? src.ndim - 1 : 0);
  int64_t shape[kMaxDims];
  int64_t need = 1;
  for (int d = 0; c.ok() && d < src.ndim; d++) {
    shape[d] = c.inum_in("an output dimension", 0, kMaxElements);
    need = c.mul(need, shape[d], "the output");
  }
  c.out(2, o, need);
  if (!c.ok()) return c.finish(nullptr);
  // Indices are checked in the kernel (0 <= index < outShape[axis]), as for gather.
  const int shared = c.ok() ? c.shared(1) : 0;
  return c.run([&] { return g_kernels->scatter_add(src, axis, idx, o, shape, shared); }, src.ndim > 0 ? shape[axis] : 1,
               axis);
}

// adamUpdate(p, g, m, v, vmax | null): meta = g view, then lr, beta1, beta2, eps, weightDecay, decoupled,
// maximize, bc1, bc2Sqrt, then the dtype codes of p, m, v (and vmax).
napi_value entry_adam(napi_env env, napi_callback_info info) {
  Call c(env, info, "adamUpdate");
  View g;
  c.view(1, g);
  AdamParams h;
  h.lr = c.num(), h.beta1 = c.num(), h.beta2 = c.num(), h.eps = c.num(), h.weight_decay = c.num();
  h.decoupled = c.num() != 0, h.maximize = c.num() != 0;
  h.bc1 = c.num(), h.bc2_sqrt = c.num();
  const int64_t n = c.ok() ? view_size(g) : 0;
  Out p, m, v, x;
  c.out(0, p, n);
  c.out(2, m, n);
  c.out(3, v, n);
  napi_valuetype t = napi_null;
  if (c.argc > 4) napi_typeof(env, c.argv[4], &t);
  const bool has_max = t == napi_object;
  if (has_max) c.out(4, x, n);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->adam(p, g, m, v, has_max ? &x : nullptr, h); });
}

// softmax(log, x, out): meta = x view, axis, out dtype code. out has x's size.
napi_value entry_softmax(napi_env env, napi_callback_info info) {
  Call c(env, info, "softmax");
  const int log = c.int_arg(0);
  View x;
  Out o;
  c.view(1, x);
  const int axis = (int)c.inum_in("axis", 0, x.ndim > 0 ? x.ndim - 1 : 0);
  c.out(2, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->softmax(x, axis, log, o); });
}

// softmaxBackward(log, y, ct, out): meta = y view, ct view, axis, out dtype code. out has y's size.
napi_value entry_softmax_backward(napi_env env, napi_callback_info info) {
  Call c(env, info, "softmaxBackward");
  const int log = c.int_arg(0);
  View y, ct;
  Out o;
  c.view(1, y);
  c.view(2, ct);
  const int axis = (int)c.inum_in("axis", 0, y.ndim > 0 ? y.ndim - 1 : 0);
  c.out(3, o, c.ok() ? view_size(y) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.run([&] { return g_kernels->softmax_backward(y, ct, axis, log, o); });
}

// ---------------------------------------------------------------------------------------------------------
void finalize_instance(napi_env env, void* data, void*) {
  Instance* inst = static_cast<Instance*>(data);
  if (inst->meta_ref) napi_delete_reference(env, inst->meta_ref);
  delete inst;
}

// init(meta: Float64Array): remember the meta buffer (kept alive by a reference).
napi_value Init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_typedarray_type type;
  size_t len = 0;
  void* data = nullptr;
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &len, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array) {
    napi_throw_type_error(env, nullptr, "native init: expected a Float64Array");
    return nullptr;
  }
  Instance* inst = nullptr;
  napi_get_instance_data(env, reinterpret_cast<void**>(&inst));
  if (!inst) {
    inst = new Instance();
    napi_set_instance_data(env, inst, finalize_instance, nullptr);
  }
  if (inst->meta_ref) napi_delete_reference(env, inst->meta_ref);
  napi_create_reference(env, argv[0], 1, &inst->meta_ref);
  inst->meta = static_cast<const double*>(data);
  inst->meta_len = len;
  return nullptr;
}

napi_value SetNumThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t n = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 0) {
    napi_throw_range_error(env, nullptr, "setNumThreads: expected a non-negative integer");
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(g_call_mu);  // never resize the pool under another thread's kernel
  pool_set_threads(n);
  return nullptr;
}

napi_value GetNumThreads(napi_env env, napi_callback_info) {
  int n;
  {
    std::lock_guard<std::mutex> lock(g_call_mu);
    n = pool_threads();
  }
  napi_value v;
  napi_create_int32(env, n, &v);
  return v;
}

napi_value string(napi_env env, const char* s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

// adviseHeap(): ask for transparent huge pages on the part of the malloc heap grown since the last call. The
// backend calls it after allocating a large tensor (which, with the malloc settings below, comes from the heap):
// memory the heap has just grown by is not yet touched, and a first touch costs one fault per 4 KiB page, which
// on a virtual machine can be ~10 us (a 67 MB gradient: 16,000 faults, ~175 ms for a ~4 ms kernel). Huge pages
// fault once per 2 MiB. The range is the heap between the end advised so far and the current break, both
// rounded inwards to 2 MiB; a heap trimmed below that end is advised again when it regrows (a regrown heap is a
// new mapping without the advice). No-op where madvise(MADV_HUGEPAGE) does not exist or malloc is not tuned.
static bool g_malloc_tuned = false;  // set once at load, under g_advise_mu
static std::mutex g_advise_mu;
static uintptr_t g_advised_end = 0;  // set at load (the break then, rounded up), 0 when malloc is not tuned
static const uintptr_t kHuge = uintptr_t(2) << 20;

static void advise_init() {
#if defined(__linux__) && defined(__GLIBC__) && defined(MADV_HUGEPAGE)
  void* b = sbrk(0);
  if (b != (void*)-1) g_advised_end = (reinterpret_cast<uintptr_t>(b) + kHuge - 1) & ~(kHuge - 1);
#endif
}

napi_value AdviseHeap(napi_env env, napi_callback_info) {
#if defined(__linux__) && defined(__GLIBC__) && defined(MADV_HUGEPAGE)
  std::lock_guard<std::mutex> lock(g_advise_mu);
  uintptr_t& advised_end = g_advised_end;
  if (advised_end == 0) return nullptr;
  void* brk_now = sbrk(0);
  if (brk_now == (void*)-1) return nullptr;
  const uintptr_t cur = reinterpret_cast<uintptr_t>(brk_now) & ~(kHuge - 1);
  if (cur < advised_end) {
    advised_end = cur;  // the heap shrank: its regrowth is a new mapping, advised from here on
  } else if (cur > advised_end) {
    madvise(reinterpret_cast<void*>(advised_end), cur - advised_end, MADV_HUGEPAGE);
    advised_end = cur;
  }
#endif
  (void)env;
  return nullptr;
}

// isa(): the instruction set of the kernels in use.
napi_value Isa(napi_env env, napi_callback_info) {
  const char* isa;
  {
    std::lock_guard<std::mutex> lock(g_call_mu);
    isa = g_kernels->isa;
  }
  return string(env, isa);
}

// setIsa(name): switch to the "avx512", "avx2" or "base" kernels (for tests); false if the CPU lacks it.
napi_value SetIsa(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  char name[32] = {0};
  size_t n = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &n) != napi_ok) {
    napi_throw_type_error(env, nullptr, "setIsa: expected a string");
    return nullptr;
  }
  const Kernels* want = nullptr;
  bool supported = false;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (std::strcmp(name, "avx512") == 0) {
    want = kernels_avx512();
    supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                __builtin_cpu_supports("fma");
  } else if (std::strcmp(name, "avx2") == 0) {
    want = kernels_avx2();
    supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
#endif
  if (std::strcmp(name, "base") == 0) {
    want = kernels_base();
    supported = true;
  }
  if (want && supported) {
    std::lock_guard<std::mutex> lock(g_call_mu);
    g_kernels = want;
  }
  napi_value v;
  napi_get_boolean(env, want && supported, &v);
  return v;
}

// describe(): what kernels.def declares, for the TypeScript side to build its tables from (once, at load):
// { unary, binary, reduce, activation: op names in code order, families: [{ name, serves, meta }] } where
// name is the export, serves the Backend methods in `kind` order and meta the meta-buffer layout.
napi_value names(napi_env env, const char* const* list, size_t n) {
  napi_value a;
  napi_create_array_with_length(env, n, &a);
  for (size_t i = 0; i < n; i++) napi_set_element(env, a, (uint32_t)i, string(env, list[i]));
  return a;
}

napi_value Describe(napi_env env, napi_callback_info) {
  static const char* const unary[] = {
#define CR_UNARY(code, js) #js,
#include "kernels.def"
  };
  static const char* const binary[] = {
#define CR_BINARY(code, js) #js,
#include "kernels.def"
  };
  static const char* const reduce[] = {
#define CR_REDUCE(code, js) #js,
#include "kernels.def"
  };
  static const char* const act[] = {
#define CR_ACT(code, js) #js,
#include "kernels.def"
  };
  static_assert(sizeof(unary) / sizeof(*unary) == U_COUNT && sizeof(binary) / sizeof(*binary) == B_COUNT &&
                    sizeof(reduce) / sizeof(*reduce) == R_COUNT && sizeof(act) / sizeof(*act) == A_COUNT,
                "op lists and enums come from the same kernels.def");
  struct Family {
    const char *name, *serves, *meta;
  };
  static const Family families[] = {
#define CR_KERNEL(name, js, params, serves, meta) {#js, serves, meta},
#include "kernels.def"
  };
  napi_value o, fams;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "unary", names(env, unary, U_COUNT));
  napi_set_named_property(env, o, "binary", names(env, binary, B_COUNT));
  napi_set_named_property(env, o, "reduce", names(env, reduce, R_COUNT));
  napi_set_named_property(env, o, "activation", names(env, act, A_COUNT));
  const size_t nf = sizeof(families) / sizeof(*families);
  napi_create_array_with_length(env, nf, &fams);
  for (size_t i = 0; i < nf; i++) {
    napi_value f;
    napi_create_object(env, &f);
    napi_set_named_property(env, f, "name", string(env, families[i].name));
    napi_set_named_property(env, f, "serves", string(env, families[i].serves));
    napi_set_named_property(env, f, "meta", string(env, families[i].meta));
    napi_set_element(env, fams, (uint32_t)i, f);
  }
  napi_set_named_property(env, o, "families", fams);
  return o;
}

}  // namespace
}  // namespace cr

// Keep freed tensor memory mapped. Tensor storage is ArrayBuffers, which Node allocates with calloc; glibc serves
// blocks above its mmap threshold (128 KiB, rising only to the largest block freed so far) with a fresh mmap
// and unmaps them on free, so every large tensor of every training step page-faults its memory back in: a
// 6.4 MB activation costs ~2 ms of faults against ~0.6 ms for the convolution that writes it. Serving blocks up
// to 1 GiB from the heap and trimming it only past 512 MiB of free space turns that into memory reuse (the
// CNN benchmark step went from ~2,100 page faults to ~30; per-example gradients of the benchmark MLP, whose
// first-layer gradient alone is a 205 MB block, from 66,000 faults and ~800 ms per call to none and ~80 ms on a
// virtual machine where a fault costs ~10 us). Like PyTorch's caching allocator, the cost is that the process
// keeps its high-water mark of such blocks. CHAINRULE_KEEP_MALLOC=1 leaves glibc's settings alone.
static bool tune_malloc() {
#if defined(__GLIBC__)
  const char* keep = std::getenv("CHAINRULE_KEEP_MALLOC");
  if (keep && keep[0] == '1') return false;
  return mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && mallopt(M_TRIM_THRESHOLD, 512 << 20) == 1 &&
         mallopt(M_TOP_PAD, 16 << 20) == 1;
#else
  return false;
#endif
}

NAPI_MODULE_INIT() {
  using namespace cr;
  static const bool malloc_tuned = tune_malloc();
  if (malloc_tuned) {
    std::lock_guard<std::mutex> lock(cr::g_advise_mu);
    if (!cr::g_malloc_tuned) {
      cr::g_malloc_tuned = true;
      cr::advise_init();
    }
  }
  {
    // Each worker_thread that loads the addon runs this on its own thread, possibly while another thread runs
    // kernels: the process-global state is set up under the call lock.
    std::lock_guard<std::mutex> lock(g_call_mu);
    if (!g_kernels) {
      g_kernels = best_kernels();
      const char* force = std::getenv("CHAINRULE_NATIVE_ISA");
      if (force && std::strcmp(force, "base") == 0) g_kernels = kernels_base();
      if (force && std::strcmp(force, "avx2") == 0 && g_kernels == kernels_avx512()) g_kernels = kernels_avx2();
    }
    pool_threads();  // start the pool now, sized by CHAINRULE_NUM_THREADS (see pool.cc), warning at load
  }
  struct Fn {
    const char* name;
    napi_callback cb;
  } fns[] = {
      {"init", Init},       {"setNumThreads", SetNumThreads}, {"getNumThreads", GetNumThreads},
      {"isa", Isa},         {"setIsa", SetIsa},               {"describe", Describe},
      {"adviseHeap", AdviseHeap},
#define CR_KERNEL(name, js, params, serves, meta) {#js, entry_##name},
#include "kernels.def"
  };
  for (const Fn& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
  return exports;
}
