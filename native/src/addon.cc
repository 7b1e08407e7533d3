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
// JavaScript raises an exception instead of reading out of bounds.
#define NAPI_VERSION 8
#include <node_api.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <cstring>

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
  char err[200];

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

  void fail(const char* msg) {
    if (!ok()) return;
    std::snprintf(err, sizeof(err), "native %s: %s", op, msg);
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
    if (!array(i, &v.data, &v.dtype, &len)) return;
    v.offset = (int64_t)num();
    const double nd = num();
    if (!(nd >= 0 && nd <= kMaxDims)) {
      fail("rank must be between 0 and 32");
      return;
    }
    v.ndim = (int)nd;
    bool empty = false;
    for (int d = 0; d < v.ndim; d++) {
      v.shape[d] = (int64_t)num();
      if (v.shape[d] < 0) fail("negative dimension");
      if (v.shape[d] == 0) empty = true;
    }
    for (int d = 0; d < v.ndim; d++) v.strides[d] = (int64_t)num();
    if (!ok() || empty) return;
    int64_t lo = v.offset, hi = v.offset;
    for (int d = 0; d < v.ndim; d++) {
      const int64_t span = (v.shape[d] - 1) * v.strides[d];
      if (span < 0) lo += span;
      else hi += span;
    }
    if (lo < 0 || hi >= len) fail("view reaches outside its buffer (shape/strides/offset inconsistent with length)");
  }

  // Contiguous output argument i holding at least `need` elements.
  void out(size_t i, Out& o, int64_t need) {
    if (!array(i, &o.data, &o.dtype, &o.length)) return;
    if (o.length < need) fail("output buffer is too small");
  }

  napi_value finish(Err e) {
    if (scratch_failed()) fail("out of memory (scratch buffers)");
    if (e) fail(e);
    if (!ok()) napi_throw_error(env, nullptr, err);
    return nullptr;
  }
};

int64_t view_size(const View& v) {
  int64_t n = 1;
  for (int d = 0; d < v.ndim; d++) n *= v.shape[d];
  return n;
}

// ---------------------------------------------------------------------------------------------------------
napi_value Unary(napi_env env, napi_callback_info info) {
  Call c(env, info, "unary");
  const int op = c.int_arg(0);
  View x;
  Out o;
  c.view(1, x);
  c.out(2, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->unary(op, x, o));
}

napi_value Binary(napi_env env, napi_callback_info info) {
  Call c(env, info, "binary");
  const int op = c.int_arg(0);
  View a, b;
  Out o;
  c.view(1, a);
  c.view(2, b);
  c.out(3, o, c.ok() ? view_size(a) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->binary(op, a, b, o));
}

napi_value Where(napi_env env, napi_callback_info info) {
  Call c(env, info, "where");
  View k, a, b;
  Out o;
  c.view(0, k);
  c.view(1, a);
  c.view(2, b);
  c.out(3, o, c.ok() ? view_size(k) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->where(k, a, b, o));
}

// activation(kind, act, x, b | null, out): kind 0 out = act(x + b), kind 1 out = b * act'(x = act's output).
napi_value Activation(napi_env env, napi_callback_info info) {
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
  return c.finish(g_kernels->activation(kind, act, x, has_b ? &b : nullptr, o));
}

napi_value Cast(napi_env env, napi_callback_info info) {
  Call c(env, info, "cast");
  View x;
  Out o;
  c.view(0, x);
  c.out(1, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->cast(x, o));
}

napi_value Copy(napi_env env, napi_callback_info info) {
  Call c(env, info, "copy");
  View s, d;
  c.view(0, s);
  c.view(1, d);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->copy(s, d));
}

napi_value Reduce(napi_env env, napi_callback_info info) {
  Call c(env, info, "reduce");
  const int op = c.int_arg(0);
  View x;
  Out o;
  c.view(1, x);
  int axes[kMaxDims];
  const int naxes = (int)c.num();
  if (naxes < 0 || naxes > kMaxDims) c.fail("too many axes");
  int64_t kept = c.ok() ? view_size(x) : 0;
  for (int i = 0; c.ok() && i < naxes; i++) {
    axes[i] = (int)c.num();
    if (axes[i] >= 0 && axes[i] < x.ndim && x.shape[axes[i]] > 0) kept /= x.shape[axes[i]];
  }
  c.out(2, o, kept);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->reduce(op, x, axes, naxes, o));
}

napi_value ArgReduce(napi_env env, napi_callback_info info) {
  Call c(env, info, "argReduce");
  const int is_min = c.int_arg(0);
  View x;
  Out o;
  c.view(1, x);
  const int axis = (int)c.num();
  int64_t kept = c.ok() ? view_size(x) : 0;
  if (c.ok() && axis >= 0 && axis < x.ndim && x.shape[axis] > 0) kept /= x.shape[axis];
  c.out(2, o, kept);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->arg_reduce(is_min, x, axis, o));
}

napi_value Cumsum(napi_env env, napi_callback_info info) {
  Call c(env, info, "cumsum");
  View x;
  Out o;
  c.view(0, x);
  const int axis = (int)c.num();
  const int reverse = (int)c.num();
  c.out(1, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->cumsum(x, axis, reverse, o));
}

napi_value Dot(napi_env env, napi_callback_info info) {
  Call c(env, info, "dot");
  View a, b;
  Out o;
  c.view(0, a);
  c.view(1, b);
  int64_t need = 0;  // batch * M * N
  if (c.ok() && a.ndim >= 2 && b.ndim == a.ndim) {
    need = b.shape[b.ndim - 1];
    for (int d = 0; d < a.ndim - 1; d++) need *= a.shape[d];
  }
  c.out(2, o, need);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->dot(a, b, o));
}

napi_value Conv2d(napi_env env, napi_callback_info info) {
  Call c(env, info, "conv2d");
  const int kind = c.int_arg(0);
  View p, q;
  Out o;
  c.view(1, p);
  c.view(2, q);
  int64_t shape[4];
  for (int i = 0; i < 4; i++) shape[i] = (int64_t)c.num();
  ConvParams cp;
  cp.sh = (int64_t)c.num(), cp.sw = (int64_t)c.num();
  cp.ph = (int64_t)c.num(), cp.pw = (int64_t)c.num();
  cp.dh = (int64_t)c.num(), cp.dw = (int64_t)c.num();
  cp.groups = (int64_t)c.num();
  // optional epilogue: argument 4 the bias array (or null) with its view in the meta buffer, then the act code
  View b;
  napi_valuetype bt = napi_null;
  if (c.argc > 4) napi_typeof(env, c.argv[4], &bt);
  const bool has_b = bt != napi_null && bt != napi_undefined;
  if (has_b) c.view(4, b);
  const int act = (int)c.num();
  c.out(3, o, shape[0] * shape[1] * shape[2] * shape[3]);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->conv2d(kind, p, q, o, shape, cp, has_b ? &b : nullptr, act));
}

napi_value Pool2d(napi_env env, napi_callback_info info) {
  Call c(env, info, "pool2d");
  const int kind = c.int_arg(0);
  View x;
  Out o;
  c.view(1, x);
  int64_t shape[4];
  for (int i = 0; i < 4; i++) shape[i] = (int64_t)c.num();
  PoolParams pp;
  pp.kh = (int64_t)c.num(), pp.kw = (int64_t)c.num();
  pp.sh = (int64_t)c.num(), pp.sw = (int64_t)c.num();
  pp.ph = (int64_t)c.num(), pp.pw = (int64_t)c.num();
  c.out(2, o, shape[0] * shape[1] * shape[2] * shape[3]);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->pool2d(kind, x, o, shape, pp));
}

// maxPool2dBackward(x, dy, out): meta = x view, dy view, kh, kw, sh, sw, ph, pw, out's dtype code.
napi_value MaxPool2dBackward(napi_env env, napi_callback_info info) {
  Call c(env, info, "maxPool2dBackward");
  View x, dy;
  Out o;
  c.view(0, x);
  c.view(1, dy);
  PoolParams pp;
  pp.kh = (int64_t)c.num(), pp.kw = (int64_t)c.num();
  pp.sh = (int64_t)c.num(), pp.sw = (int64_t)c.num();
  pp.ph = (int64_t)c.num(), pp.pw = (int64_t)c.num();
  c.out(2, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->max_pool2d_backward(x, dy, o, pp));
}

napi_value Gather(napi_env env, napi_callback_info info) {
  Call c(env, info, "gather");
  View x, idx;
  Out o;
  c.view(0, x);
  c.view(1, idx);
  const int axis = (int)c.num();
  c.out(2, o, c.ok() ? view_size(idx) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->gather(x, axis, idx, o));
}

napi_value ScatterAdd(napi_env env, napi_callback_info info) {
  Call c(env, info, "scatterAdd");
  View src, idx;
  Out o;
  c.view(0, src);
  c.view(1, idx);
  const int axis = (int)c.num();
  int64_t shape[kMaxDims];
  int64_t need = 1;
  for (int d = 0; c.ok() && d < src.ndim; d++) {
    shape[d] = (int64_t)c.num();
    need *= shape[d];
  }
  c.out(2, o, need);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->scatter_add(src, axis, idx, o, shape));
}

// adamUpdate(p, g, m, v, vmax | null): meta = g view, then lr, beta1, beta2, eps, weightDecay, decoupled,
// maximize, bc1, bc2Sqrt, then the dtype codes of p, m, v (and vmax).
napi_value Adam(napi_env env, napi_callback_info info) {
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
  return c.finish(g_kernels->adam(p, g, m, v, has_max ? &x : nullptr, h));
}

// softmax(log, x, out): meta = x view, axis, out dtype code. out has x's size.
napi_value Softmax(napi_env env, napi_callback_info info) {
  Call c(env, info, "softmax");
  const int log = c.int_arg(0);
  View x;
  Out o;
  c.view(1, x);
  const int axis = (int)c.num();
  c.out(2, o, c.ok() ? view_size(x) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->softmax(x, axis, log, o));
}

// softmaxBackward(log, y, ct, out): meta = y view, ct view, axis, out dtype code. out has y's size.
napi_value SoftmaxBackward(napi_env env, napi_callback_info info) {
  Call c(env, info, "softmaxBackward");
  const int log = c.int_arg(0);
  View y, ct;
  Out o;
  c.view(1, y);
  c.view(2, ct);
  const int axis = (int)c.num();
  c.out(3, o, c.ok() ? view_size(y) : 0);
  if (!c.ok()) return c.finish(nullptr);
  return c.finish(g_kernels->softmax_backward(y, ct, axis, log, o));
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
  pool_set_threads(n);
  return nullptr;
}

napi_value GetNumThreads(napi_env env, napi_callback_info) {
  napi_value v;
  napi_create_int32(env, pool_threads(), &v);
  return v;
}

napi_value string(napi_env env, const char* s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

// isa(): the instruction set of the kernels in use.
napi_value Isa(napi_env env, napi_callback_info) { return string(env, g_kernels->isa); }

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
  if (want && supported) g_kernels = want;
  napi_value v;
  napi_get_boolean(env, want && supported, &v);
  return v;
}

}  // namespace
}  // namespace cr

// Keep freed tensor memory mapped. Tensor storage is ArrayBuffers, which Node allocates with calloc; glibc serves
// blocks above its mmap threshold (128 KiB, rising only to the largest block freed so far) with a fresh mmap
// and unmaps them on free, so every large tensor of every training step page-faults its memory back in: a
// 6.4 MB activation costs ~2 ms of faults against ~0.6 ms for the convolution that writes it. Serving blocks up
// to 64 MiB from the heap and trimming it only past 512 MiB of free space turns that into memory reuse (the
// CNN benchmark step went from ~2,100 page faults to ~30). Like PyTorch's caching allocator, the cost is that
// the process keeps its high-water mark of such blocks. CHAINRULE_KEEP_MALLOC=1 leaves glibc's settings alone.
static bool tune_malloc() {
#if defined(__GLIBC__)
  const char* keep = std::getenv("CHAINRULE_KEEP_MALLOC");
  if (keep && keep[0] == '1') return false;
  return mallopt(M_MMAP_THRESHOLD, 64 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 512 << 20) == 1 &&
         mallopt(M_TOP_PAD, 16 << 20) == 1;
#else
  return false;
#endif
}

NAPI_MODULE_INIT() {
  using namespace cr;
  static const bool malloc_tuned = tune_malloc();
  (void)malloc_tuned;
  if (!g_kernels) {
    g_kernels = best_kernels();
    const char* force = std::getenv("CHAINRULE_NATIVE_ISA");
    if (force && std::strcmp(force, "base") == 0) g_kernels = kernels_base();
    if (force && std::strcmp(force, "avx2") == 0 && g_kernels == kernels_avx512()) g_kernels = kernels_avx2();
  }
  struct Fn {
    const char* name;
    napi_callback cb;
  } fns[] = {
      {"init", Init},         {"setNumThreads", SetNumThreads}, {"getNumThreads", GetNumThreads},
      {"isa", Isa},           {"setIsa", SetIsa},               {"unary", Unary},
      {"binary", Binary},     {"where", Where},                 {"cast", Cast},
      {"copy", Copy},         {"reduce", Reduce},               {"argReduce", ArgReduce},
      {"cumsum", Cumsum},     {"dot", Dot},                     {"conv2d", Conv2d},
      {"pool2d", Pool2d},     {"gather", Gather},               {"scatterAdd", ScatterAdd},
      {"adamUpdate", Adam},   {"activation", Activation},       {"maxPool2dBackward", MaxPool2dBackward},
      {"softmax", Softmax},   {"softmaxBackward", SoftmaxBackward},
  };
  for (const Fn& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
  return exports;
}
