// N-API entry points of the chainrule native backend (plain C N-API, no node-addon-api).
//
// Calling convention, chosen to keep the per-call cost low: typed arrays are passed as arguments and used in
// place (napi_get_typedarray_info gives their data pointer, nothing is copied); shapes, strides, offsets and
// small parameters are written by JavaScript into one preallocated Float64Array (the "meta" buffer handed over
// once by init()) and read here sequentially, so a call allocates nothing on either side.
// What a family's call holds is its `meta` layout in kernels.def (the numbers, then per view: dtype code,
// offset, ndim, shape[ndim], strides[ndim]; per output: its dtype code). Each layout is parsed at compile time
// and its entry point generated from it (entry<F, member>): straight-line decoding, no per-family code here.
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
#include <type_traits>
#include <utility>

#include "common.h"
#include "pool.h"

#define CR_INLINE inline __attribute__((always_inline))

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

// The kernels of the ISA build `name` ("avx512", "avx2" or "base"), or nullptr if this CPU lacks it.
const Kernels* kernels_named(const char* name) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool fma = __builtin_cpu_supports("fma");
  if (std::strcmp(name, "avx512") == 0)
    return fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") ? kernels_avx512() : nullptr;
  if (std::strcmp(name, "avx2") == 0) return fma && __builtin_cpu_supports("avx2") ? kernels_avx2() : nullptr;
#endif
  return std::strcmp(name, "base") == 0 ? kernels_base() : nullptr;
}

const Kernels* best_kernels() {
  for (const char* isa : {"avx512", "avx2"})
    if (const Kernels* k = kernels_named(isa)) return k;
  return kernels_base();
}

// ---------------------------------------------------------------------------------------------------------
// Layouts: each family's `meta` string of kernels.def, parsed at compile time (see the header of kernels.def).

// The checked integers, by layout name: their range and how messages call them (and a list's count). hi =
// kRank: below the first view's rank (0 for a rank-0 view), checked once the views are read.
constexpr int64_t kRank = -1;
struct Range {
  const char *name, *what, *count_what;
  int64_t lo, hi;
};
// (Bounds on the conv / pool parameters keep every index product of the kernels inside int64: 2^31 * 2^48 <
// 2^80 is formed only in 128 bits, see conv_impl; meaningful values are far smaller.)
constexpr Range kRanges[] = {{"axis", "axis", "", 0, kRank},
                             {"axes", "an axis", "the number of axes", 0, kRank},
                             {"shape", "an output dimension", "the number of output dimensions", 0, kMaxElements},
                             {"reverse", "reverse", "", 0, 1},
                             {"act", "activation code", "", -1, A_COUNT - 1},
                             {"kernel", "kernel size", "", 1, kMaxParam},
                             {"stride", "stride", "", 1, kMaxParam},
                             {"padding", "padding", "", 0, kMaxParam},
                             {"dilation", "dilation", "", 1, kMaxParam},
                             {"groups", "groups", "", 1, kMaxElements}};

constexpr int kMaxTok = 16, kMaxArrays = 4, kMaxInts = 96, kMaxFloats = 16;
// The most array arguments a call may have: the fixed ones and a `views[#]` list.
constexpr int kMaxArgs = 8 + kMaxListViews;

// A token: 'k' kind, 'i' integers, 'f' a float, 'v' a view, 'V' an optional view, 'x' indices, 'o' an output,
// 'O' an optional output, 'L' a list of views (its count in the meta buffer, then its views, from argument arg on). Integers are n[at, at + len), a counted list (count '#' or 'r') n[at] then the list;
// arrays are v[at] or o[at], from argument arg; an output holds at least `size` elements (the R of out:R).
struct Tok {
  char type = 0, count = 0, size = 0;
  int len = 1, at = 0, arg = 0;
  Range r{};
  constexpr int first() const { return at + (count ? 1 : 0); }  // where the values start
};

// The integers as the kernel's parameters take them ('i' one, 'l' a list), in order.
struct Item {
  int at = 0, len = 0;
  char type = 0;
};

struct Layout {
  Tok tok[kMaxTok];
  Item item[kMaxTok + 2];
  int ntok = 0, nitem = 0, nn = 0, nf = 0, nv = 0, no = 0;
  int shape = -1, axes = -1, idx = -1, list = -1;  // tokens: `shape`, `axes` or `axis`, `idx`, `views[#]`
  char views[kMaxArrays] = {}, outs[kMaxArrays] = {};
  bool bad = false;
};

constexpr bool is(const char* s, int n, const char* word) {
  for (int i = 0; i < n; i++)
    if (s[i] != word[i]) return false;
  return word[n] == 0;
}

constexpr Layout parse(const char* s) {
  Layout L;
  for (int n = 0; *s; s += n + (s[n] == ' ')) {
    n = 0;
    while (s[n] && s[n] != ' ') n++;
    int w = 0;  // the word before `[` or `:`
    while (w < n && s[w] != '[' && s[w] != ':') w++;
    Tok& k = L.tok[L.ntok++];
    const int arg = (L.tok[0].type == 'k') + L.nv + L.no;
    if (is(s, n, "views[#]")) {  // the last token: its views are the last arguments, however many
      k.type = 'L', k.arg = arg;
      L.bad |= L.list >= 0;
      L.list = L.ntok - 1;
    } else if (is(s, n, "kind")) {
      k.type = 'k', k.at = L.nn++, L.item[L.nitem++] = {k.at, 1, 'i'};
      L.bad |= L.ntok > 1;
    } else if (is(s, n, "view") || is(s, n, "view?") || is(s, n, "idx")) {
      k.type = n == 3 ? 'x' : n == 4 ? 'v' : 'V', k.at = L.nv, k.arg = arg;
      L.views[L.nv++] = k.type == 'V' ? 'V' : 'v';
      if (k.type == 'x') L.idx = L.ntok - 1;
    } else if (is(s, w, "out") || is(s, w, "out?")) {
      k.type = w == 3 ? 'o' : 'O', k.at = L.no, k.arg = arg, k.size = s[w + 1] == 'v' ? s[w + 2] : s[w + 1];
      L.outs[L.no++] = k.type;
      L.bad |= w == n || !(is(s + w + 1, n - w - 1, "v0") || is(s + w + 1, n - w - 1, "v1") ||
                           is(s + w + 1, n - w - 1, "shape") || is(s + w + 1, n - w - 1, "kept") ||
                           is(s + w + 1, n - w - 1, "dot"));
    } else {
      for (const Range& r : kRanges)
        if (is(s, w, r.name)) k.type = 'i', k.r = r;
      if (!k.type) {  // a float
        k.type = 'f', k.at = L.nf++;
        L.bad |= w != n;
        continue;
      }
      if (is(s, w, "shape")) L.shape = L.ntok - 1;
      if (k.r.hi == kRank) L.axes = L.ntok - 1;
      k.count = w == n || (s[w + 1] >= '0' && s[w + 1] <= '9') ? 0 : s[w + 1] == '#' ? '#' : 'r';
      k.len = k.count ? kMaxDims : w == n ? 1 : s[w + 1] - '0';
      k.at = L.nn, L.nn += k.len + (k.count ? 1 : 0);
      if (k.count == '#') L.item[L.nitem++] = {k.at, 1, 'i'};
      L.item[L.nitem++] = {k.first(), k.len, w == n ? 'i' : 'l'};
      L.bad |= w != n && (k.count ? !is(s + w, n - w, "[#]") && !is(s + w, n - w, "[rank]")
                                  : s[w] != '[' || n != w + 3 || k.len < 1);
    }
  }
  if (L.idx >= 0) L.item[L.nitem++] = {L.nn++, 1, 'i'};  // `shared`
  L.bad |= L.list >= 0 && L.list != L.ntok - 1;
  for (int t = 0; t < L.ntok; t++) {  // what the outputs' sizes and the indices refer to must be there
    const char z = L.tok[t].size;
    L.bad |= (z == '0' && L.nv < 1) || ((z == '1' || z == 'd') && L.nv < 2) || (z == 's' && L.shape < 0) ||
             (z == 'k' && (L.axes < 0 || L.nv < 1));
  }
  L.bad |= L.ntok > kMaxTok || L.nv > kMaxArrays || L.no > kMaxArrays || L.nn > kMaxInts || L.nf > kMaxFloats ||
           (L.idx >= 0 && (L.axes < 0 || L.tok[L.axes].len != 1 || L.tok[L.axes].count));
  return L;
}

enum Family : int {
#define CR_KERNEL(name, js, params, serves, meta) F_##name,
#include "kernels.def"
};
constexpr Layout kLayouts[] = {
#define CR_KERNEL(name, js, params, serves, meta) parse(meta),
#include "kernels.def"
};
constexpr const char* kExports[] = {
#define CR_KERNEL(name, js, params, serves, meta) #js,
#include "kernels.def"
};

// ---------------------------------------------------------------------------------------------------------
// Argument decoding. A Call reads the arguments and the meta buffer; on the first problem it records a message
// and the entry point throws it.
// Flush-denormal mode (pool.h) on the calling thread for one kernel call, the thread's own mode restored after.
struct DenormalScope {
  unsigned saved;
  DenormalScope() : saved(flush_denormal_enter()) {}
  ~DenormalScope() { flush_denormal_leave(saved); }
  DenormalScope(const DenormalScope&) = delete;
  DenormalScope& operator=(const DenormalScope&) = delete;
};

struct Call {
  napi_env env;
  napi_value argv[kMaxArgs];
  size_t argc = kMaxArgs;
  const double* meta = nullptr;
  size_t meta_len = 0;
  size_t pos = 0;
  const char* op;
  char err[320];
  bool range = false;  // throw a RangeError (bad index) rather than an Error

  // `want`: how many arguments to fetch (napi_get_cb_info fills every requested slot, so a family without a
  // `views[#]` list asks only for the fixed ones: 68 fewer slots per call, ~130 instructions)
  Call(napi_env e, napi_callback_info info, const char* name, size_t want) : env(e), argc(want), op(name) {
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
    if (ok() && (v < lo || v > hi)) in_range(what, v, lo, hi);
    return ok() ? v : lo;
  }

  void in_range(const char* what, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) fail("%s must be in [%lld, %lld], got %lld", what, (long long)lo, (long long)hi, (long long)v);
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

  // Whether argument i is given (not null or undefined): optional views and outputs.
  bool present(size_t i) {
    napi_valuetype t = napi_null;
    if (i < argc) napi_typeof(env, argv[i], &t);
    return t != napi_null && t != napi_undefined;
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
  // error, a bad index (gather / scatterAdd: outside [0, bound) along axis) or a scratch allocation failure.
  template <class F>
  napi_value run(F&& kernel, int64_t bound, int axis) {
    if (!ok()) return finish(nullptr);
    Err e;
    bool oom, bad;
    int64_t v = 0;
    {
      std::lock_guard<std::mutex> lock(g_call_mu);
      const DenormalScope flush;  // setFlushDenormal(true): FTZ / DAZ on this thread for the call only
      e = kernel();
      oom = scratch_failed();  // both clear their flag, so the next call starts clean
      bad = take_bad_index(&v);
    }
    if (bad) {
      fail("index %lld is out of bounds for axis %d of size %lld (expected 0 <= index < %lld)", (long long)v, axis,
           (long long)bound, (long long)bound);
      range = true;
    }
    if (oom) fail("out of memory (scratch buffers)");
    return finish(e);
  }
};

// What a call decoded: its integers, floats, views and outputs, where its layout's tokens put them.
struct Args {
  int64_t n[kMaxInts];
  double f[kMaxFloats];
  View v[kMaxArrays];
  Out o[kMaxArrays];
  bool has_v[kMaxArrays], has_o[kMaxArrays];
  View* list;  // a `views[#]` list: storage for kMaxListViews views (only in a family that has one)
  int nlist;
};

// Element count of a checked view (at most kMaxElements, so the product cannot overflow).
int64_t view_size(const View& v) {
  int64_t n = 1;
  for (int d = 0; d < v.ndim; d++) n *= v.shape[d];
  return n;
}

// The decoding of token I of family F in three passes (each unrolled at compile time, so a family's call is
// straight-line code): its numbers, its arrays, then the checks that need the views (axes against the rank,
// `[rank]` counts) and the outputs' sizes.
template <int F, int I>
CR_INLINE void read_numbers(Call& c, Args& a) {
  constexpr Tok k = kLayouts[F].tok[I];
  if constexpr (k.type == 'k') a.n[k.at] = c.int_arg(0);
  if constexpr (k.type == 'f') a.f[k.at] = c.num();
  if constexpr (k.type == 'i') {
    const int len = k.count ? (int)(a.n[k.at] = c.inum_in(k.r.count_what, 0, kMaxDims)) : k.len;
    for (int i = 0; i < len && c.ok(); i++)
      a.n[k.first() + i] = c.inum_in(k.r.what, k.r.lo, k.r.hi == kRank ? kMaxInt : k.r.hi);  // axes: see check
  }
}

template <int F, int I>
CR_INLINE void read_arrays(Call& c, Args& a) {
  constexpr Tok k = kLayouts[F].tok[I];
  if constexpr (k.type == 'v' || k.type == 'x') c.view(k.arg, a.v[k.at]);
  if constexpr (k.type == 'V') {
    a.has_v[k.at] = c.present(k.arg);
    if (a.has_v[k.at]) c.view(k.arg, a.v[k.at]);
  }
  if constexpr (k.type == 'L') {
    a.nlist = (int)c.inum_in("the view list's length", 0, kMaxListViews);
    for (int i = 0; i < a.nlist && c.ok(); i++) c.view(k.arg + i, a.list[i]);
  }
  if constexpr (k.type == 'o' || k.type == 'O') {
    a.has_o[k.at] = k.type == 'o' || c.present(k.arg);
    if (a.has_o[k.at]) c.array(k.arg, &a.o[k.at].data, &a.o[k.at].dtype, &a.o[k.at].length);
  }
}

template <int F, int I>
CR_INLINE void check(Call& c, Args& a) {
  constexpr Layout L = kLayouts[F];
  constexpr Tok k = L.tok[I];
  const View& x = a.v[0];
  if constexpr (k.count == 'r') {
    if (c.ok() && a.n[k.at] != x.ndim)
      c.fail("%s is %lld, the first view's rank is %d", k.r.count_what, (long long)a.n[k.at], x.ndim);
  }
  if constexpr (k.type == 'i' && k.r.hi == kRank) {  // axes below the rank; a single axis of a scalar may be 0
    const int len = c.ok() ? (k.count ? (int)a.n[k.at] : k.len) : 0;
    for (int i = 0; i < len; i++) c.in_range(k.r.what, a.n[k.first() + i], 0, k.count || x.ndim ? x.ndim - 1 : 0);
  }
  if constexpr (k.type == 'o' || k.type == 'O') {
    if (!c.ok() || !a.has_o[k.at]) return;
    int64_t need = 1;
    if constexpr (k.size == '0' || k.size == '1') need = view_size(a.v[k.size - '0']);
    if constexpr (k.size == 's') {
      constexpr Tok s = L.tok[L.shape];
      for (int i = 0; i < (s.count ? (int)a.n[s.at] : s.len); i++) need = c.mul(need, a.n[s.first() + i], "the output");
    }
    if constexpr (k.size == 'k') {
      // The product of the kept extents, computed directly: dividing the element count by the reduced extents
      // would give 0 for an empty reduced axis while the kernel still writes every kept element.
      constexpr Tok ax = L.tok[L.axes];
      bool reduced[kMaxDims] = {false};
      for (int i = 0; i < (ax.count ? (int)a.n[ax.at] : ax.len); i++) reduced[a.n[ax.first() + i]] = true;
      for (int d = 0; d < x.ndim; d++)
        if (!reduced[d]) need *= x.shape[d];  // a sub-product of a checked view's extents: no overflow
    }
    if constexpr (k.size == 'd') {  // batch * M * N
      const View& y = a.v[1];
      need = x.ndim >= 2 && y.ndim == x.ndim ? y.shape[y.ndim - 1] : 0;  // else the kernel rejects it
      for (int d = 0; need && d < x.ndim - 1; d++) need = c.mul(need, x.shape[d], "the product");
    }
    const Out& o = a.o[k.at];
    if (c.ok() && o.length < need)
      c.fail("output buffer is too small (%lld elements, %lld needed)", (long long)o.length, (long long)need);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Kernel parameters from a decoded call, by type, in parameter order. cat<P>() says what each takes: 'i' an
// integer, 'l' a list, 's' / 'f' a struct of integers / floats (common.h, all its members of type Member), 'v'
// / 'V' a view / optional view, 'o' / 'O' an output / optional output.
template <class P>
using Plain = std::remove_const_t<std::remove_reference_t<P>>;
template <class P>
constexpr char cat() {
  if constexpr (std::is_same_v<P, int>) return 'i';
  else if constexpr (std::is_same_v<P, const int64_t*>) return 'l';
  else if constexpr (std::is_same_v<P, const View&>) return 'v';
  else if constexpr (std::is_same_v<P, const View*>) return 'V';
  else if constexpr (std::is_same_v<P, const Out&>) return 'o';
  else if constexpr (std::is_same_v<P, const Out*>) return 'O';
  else if constexpr (std::is_same_v<P, const Views&>) return 'L';
  else return std::is_same_v<typename Plain<P>::Member, double> ? 'f' : 's';
}
template <class P>
constexpr int slots() {  // of a parameter struct: its members, each a number of the layout
  if constexpr (cat<P>() == 's' || cat<P>() == 'f') return sizeof(Plain<P>) / sizeof(typename Plain<P>::Member);
  return 1;
}

// Where each parameter takes its value (in n, f, v or o), or bad >= 0: the first parameter that does not match
// the layout (kMaxTok: the layout gives more than the parameters take).
struct Plan {
  int at[kMaxTok] = {};
  int bad = -1;
};
template <class... P>
constexpr Plan plan(const Layout& L) {
  const char cats[] = {cat<P>()...};
  const int slot[] = {slots<P>()...};
  Plan p;
  int it = 0, f = 0, v = 0, o = 0;
  bool list = false;
  for (int i = 0; i < (int)sizeof...(P); i++) {
    const char c = cats[i];
    bool ok = true;
    if (c == 'i' || c == 'l') ok = it < L.nitem && L.item[it].type == c, p.at[i] = L.item[it++].at;
    if (c == 's') {
      int got = 0;
      for (p.at[i] = L.item[it].at; got < slot[i] && it < L.nitem && L.item[it].len < kMaxDims;)
        got += L.item[it++].len;
      ok = got == slot[i];
    }
    if (c == 'f') p.at[i] = f, ok = (f += slot[i]) <= L.nf;
    if (c == 'v' || c == 'V') ok = v < L.nv && L.views[v] == c, p.at[i] = v++;
    if (c == 'o' || c == 'O') ok = o < L.no && L.outs[o] == c, p.at[i] = o++;
    if (c == 'L') ok = L.list >= 0 && !list, list = true;
    if (!ok && p.bad < 0) p.bad = i;
  }
  if (p.bad < 0 && (it != L.nitem || f != L.nf || v != L.nv || o != L.no || list != (L.list >= 0))) p.bad = kMaxTok;
  return p;
}

template <class P, int At>
CR_INLINE decltype(auto) take(Args& a) {  // (a parameter struct by value: P is a reference to it)
  constexpr char k = cat<P>();
  if constexpr (k == 'i') return (int)a.n[At];
  else if constexpr (k == 'l') return a.n + At;
  else if constexpr (k == 'v') return a.v[At];
  else if constexpr (k == 'V') return a.has_v[At] ? &a.v[At] : nullptr;
  else if constexpr (k == 'o') return a.o[At];
  else if constexpr (k == 'O') return a.has_o[At] ? &a.o[At] : nullptr;
  else if constexpr (k == 'L') return Views{a.nlist, a.list};
  else {
    Plain<P> s;
    std::memcpy(&s, k == 'f' ? (const void*)(a.f + At) : (const void*)(a.n + At), sizeof(s));
    return s;
  }
}

// Kernel k with its parameters taken from a decoded call of family F.
template <int F, class... P, size_t... I>
CR_INLINE Err invoke(Err (*k)(P...), Args& a, std::index_sequence<I...>) {
  constexpr Plan p = plan<P...>(kLayouts[F]);
  static_assert(p.bad < 0, "kernels.def: a kernel's parameters do not match its layout");
  return k(take<P, p.at[I]>(a)...);
}

// The N-API entry point of family F: decode its layout, then run its kernel (member m of Kernels).
template <int F, class... P, size_t... T>
CR_INLINE napi_value call(Call& c, Err (*Kernels::*m)(P...), std::index_sequence<T...>) {
  constexpr Layout L = kLayouts[F];
  static_assert(!L.bad, "kernels.def: a layout does not parse (see its header)");
  Args a;
  View list[L.list >= 0 ? kMaxListViews : 1];
  a.list = list;
  a.nlist = 0;
  (read_numbers<F, T>(c, a), ...);
  (read_arrays<F, T>(c, a), ...);
  (check<F, T>(c, a), ...);
  int axis = 0;
  int64_t bound = 1;
  if constexpr (L.idx >= 0) {
    if (!c.ok()) return c.finish(nullptr);
    axis = (int)a.n[L.tok[L.axes].at];
    if (a.v[0].ndim > 0) bound = L.shape >= 0 ? a.n[L.tok[L.shape].first() + axis] : a.v[0].shape[axis];
    a.n[L.nn - 1] = c.shared(L.tok[L.idx].arg);
  }
  return c.run([&] { return invoke<F>(g_kernels->*m, a, std::index_sequence_for<P...>()); }, bound, axis);
}

template <int F, auto M>
napi_value entry(napi_env env, napi_callback_info info) {
  Call c(env, info, kExports[F], kLayouts[F].list >= 0 ? kMaxArgs : kMaxArgs - kMaxListViews);
  return call<F>(c, M, std::make_index_sequence<kLayouts[F].ntok>());
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

// A value read under g_call_mu (never in the middle of another thread's kernel call), returned to JavaScript:
// a boolean or an int32 (getNumThreads, amx, flushDenormal).
inline napi_value to_js(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}
inline napi_value to_js(napi_env env, int n) {
  napi_value v;
  napi_create_int32(env, n, &v);
  return v;
}
template <class F>
napi_value locked_call(napi_env env, F&& f) {
  decltype(f()) r;
  {
    std::lock_guard<std::mutex> lock(g_call_mu);
    r = f();
  }
  return to_js(env, r);
}

napi_value GetNumThreads(napi_env env, napi_callback_info) {
  return locked_call(env, [] { return pool_threads(); });
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
  const Kernels* want = kernels_named(name);
  if (want) {
    std::lock_guard<std::mutex> lock(g_call_mu);
    g_kernels = want;
  }
  napi_value v;
  napi_get_boolean(env, want != nullptr, &v);
  return v;
}

// A boolean switch of the addon (setFlushDenormal, setAmx): `set(on)` with its one boolean argument, under
// g_call_mu; returns its boolean result. A missing or non-boolean argument throws a TypeError naming `name`.
template <class F>
napi_value bool_switch(napi_env env, napi_callback_info info, const char* name, F&& set) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool want = false;
  if (argc < 1 || napi_get_value_bool(env, argv[0], &want) != napi_ok) {
    char msg[96];
    std::snprintf(msg, sizeof(msg), "%s: expected a boolean", name);
    napi_throw_type_error(env, nullptr, msg);
    return nullptr;
  }
  return locked_call(env, [&] { return set(want); });
}

// flushDenormal(): whether flush-denormal mode is on (see pool.h).
napi_value FlushDenormal(napi_env env, napi_callback_info) {
  return locked_call(env, [] { return flush_denormal(); });
}

// setFlushDenormal(on): switch flush-denormal mode (pool.h); returns whether the request took effect (false:
// on asked where the CPU has no such mode).
napi_value SetFlushDenormal(napi_env env, napi_callback_info info) {
  return bool_switch(env, info, "setFlushDenormal", [](bool on) { return flush_denormal_set(on); });
}

// amx(): whether the bfloat16 kernels use AMX tiles (the CPU and OS have them and they are not switched off).
napi_value Amx(napi_env env, napi_callback_info) {
  return locked_call(env, [] { return amx_enabled(); });
}

// setAmx(on): switch the AMX path of the bfloat16 kernels on or off (for tests and A/B measurements; the
// vdpbf16ps path runs otherwise); returns whether AMX is now used (false where the CPU or OS lacks it).
napi_value SetAmx(napi_env env, napi_callback_info info) {
  return bool_switch(env, info, "setAmx", [](bool on) { return amx_set_enabled(on); });
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
      // CHAINRULE_NATIVE_ISA may ask for a lesser build than the best this CPU runs ("avx2", "base")
      const char* force = std::getenv("CHAINRULE_NATIVE_ISA");
      const Kernels* forced = force ? kernels_named(force) : nullptr;
      g_kernels = forced ? forced : best_kernels();
    }
    pool_threads();  // start the pool now, sized by CHAINRULE_NUM_THREADS (see pool.cc), warning at load
  }
  struct Fn {
    const char* name;
    napi_callback cb;
  } fns[] = {
      {"init", Init},       {"setNumThreads", SetNumThreads}, {"getNumThreads", GetNumThreads},
      {"isa", Isa},         {"setIsa", SetIsa},               {"describe", Describe},
      {"adviseHeap", AdviseHeap}, {"amx", Amx},                    {"setAmx", SetAmx},
      {"flushDenormal", FlushDenormal}, {"setFlushDenormal", SetFlushDenormal},
#define CR_KERNEL(name, js, params, serves, meta) {#js, entry<F_##name, &Kernels::name>},
#include "kernels.def"
  };
  for (const Fn& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
  return exports;
}
