// Elementwise kernels: unary, binary, where, cast and the strided copy.
//
// Fast paths cover the dtype combinations the library produces (float ops in their own precision, int32 with
// C wrap-around, comparisons and logic into bool); every other combination goes through the float64 scalar
// definitions of scalar.h and the typed-array store conversions, exactly like the js reference backend.
// float32 transcendental functions use the float32 libm routines (within an ulp of the js backend, which
// rounds the float64 result).
#include <cstdlib>

#include "act.h"
#include "ew_ops.h"
#include "map.h"

namespace cr {
namespace CR_ISA_NS {
namespace {


// Whether the float view x holds a finite value beyond the vector sin/cos/tan's range: trig_libm_any over each
// contiguous run, the element test over strided ones.
bool trig_libm_in(const View& x) {
  i64 ost[kMaxDims];
  contiguous_strides(x.ndim, x.shape, ost);
  const i64* st[2] = {x.strides, ost};
  Iter<2> it;
  it.init(x.ndim, x.shape, st);
  if (it.size == 0) return false;
  const float* xd = static_cast<const float*>(x.data) + x.offset;
  const i64 sx = it.st[0][it.nd - 1];
  bool any = false;
  par_for(it.size, elem_grain(it.size, kGrainCheap), [&](i64 b, i64 e, int) {
    bool local = false;
    it.walk(b, e, [&](const i64* off, i64 len) {
      if (sx == 1) local = local || trig_libm_any(xd + off[0], len);
      else
        for (i64 i = 0; i < len; i++) local = local || trig_libm_needed(xd[off[0] + i * sx]);
    });
    if (local) __atomic_store_n(&any, true, __ATOMIC_RELAXED);
  });
  return any;
}

template <class T>
Err unary_float(int op, const View& x, void* o) {
  bool libm = false;  // sin, cos, tan: does x hold finite values beyond the vector functions' range?
  if constexpr (trig_op<T>(U_SIN)) {
    if (trig_op<T>(op)) libm = trig_libm_in(x);
  }
  const bool known = with_float_unary<T>(op, [&](auto f, i64 grain) {
    if (libm) map1<T, T>(x, o, kGrainCostly, [&](T v) { return trig_or_libm<T>(op, v, f); });
    else map1<T, T>(x, o, grain, f);
  });
  return known ? nullptr : "unary: unknown op";
}

// int32 ops that need no float64 detour; the others (exp, log ...) return false and take the generic path.
bool unary_int32(int op, const View& x, void* o) {
  using T = int32_t;
  constexpr i64 C = kGrainCheap;
  switch (op) {
    case U_NEG: map1<T, T>(x, o, C, [](T v) { return wrap_neg(v); }); return true;
    case U_ABS: map1<T, T>(x, o, C, [](T v) { return v < 0 ? wrap_neg(v) : v; }); return true;
    case U_SIGN: map1<T, T>(x, o, C, [](T v) { return T((v > 0) - (v < 0)); }); return true;
    case U_RELU: map1<T, T>(x, o, C, [](T v) { return v > 0 ? v : 0; }); return true;
    case U_FLOOR:
    case U_CEIL:
    case U_ROUND: map1<T, T>(x, o, C, [](T v) { return v; }); return true;
    case U_NOT: map1<T, T>(x, o, C, [](T v) { return T(v == 0); }); return true;
    default: return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
template <class T>
bool compare_logic(int op, const View& a, const View& b, void* o) {
  using U = uint8_t;
  constexpr i64 C = kGrainCheap;
  switch (op) {
    case B_EQ: map2<T, T, U>(a, b, o, C, [](T x, T y) { return U(x == y); }); return true;
    case B_NE: map2<T, T, U>(a, b, o, C, [](T x, T y) { return U(x != y); }); return true;
    case B_LT: map2<T, T, U>(a, b, o, C, [](T x, T y) { return U(x < y); }); return true;
    case B_LE: map2<T, T, U>(a, b, o, C, [](T x, T y) { return U(x <= y); }); return true;
    case B_GT: map2<T, T, U>(a, b, o, C, [](T x, T y) { return U(x > y); }); return true;
    case B_GE: map2<T, T, U>(a, b, o, C, [](T x, T y) { return U(x >= y); }); return true;
    case B_AND: map2<T, T, U>(a, b, o, C, [](T x, T y) { return U((x != 0) & (y != 0)); }); return true;
    case B_OR: map2<T, T, U>(a, b, o, C, [](T x, T y) { return U((x != 0) | (y != 0)); }); return true;
    case B_XOR: map2<T, T, U>(a, b, o, C, [](T x, T y) { return U((x != 0) ^ (y != 0)); }); return true;
    default: return false;
  }
}

template <class T>
bool arith_float(int op, const View& a, const View& b, void* o) {
  return with_float_binary<T>(op, [&](auto f, i64 grain) { map2<T, T, T>(a, b, o, grain, f); });
}

bool arith_int32(int op, const View& a, const View& b, void* o) {
  using T = int32_t;
  constexpr i64 C = kGrainCheap;
  switch (op) {
    case B_ADD: map2<T, T, T>(a, b, o, C, [](T x, T y) { return wrap_add(x, y); }); return true;
    case B_SUB: map2<T, T, T>(a, b, o, C, [](T x, T y) { return wrap_sub(x, y); }); return true;
    case B_MUL: map2<T, T, T>(a, b, o, C, [](T x, T y) { return wrap_mul(x, y); }); return true;
    case B_DIV: map2<T, T, T>(a, b, o, C, [](T x, T y) { return div_int32(x, y); }); return true;
    case B_POW: map2<T, T, T>(a, b, o, C, [](T x, T y) { return pow_int32(x, y); }); return true;
    case B_MAX: map2<T, T, T>(a, b, o, C, [](T x, T y) { return x > y ? x : y; }); return true;
    case B_MIN: map2<T, T, T>(a, b, o, C, [](T x, T y) { return x < y ? x : y; }); return true;
    default: return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
template <class T>
void where_typed(const View& c, const View& a, const View& b, void* o) {
  if (c.dtype == BOOL)
    map3<uint8_t, T>(c, a, b, o, kGrainCheap, [](uint8_t z, T x, T y) { return z ? x : y; });
  else if (c.dtype == I32)
    map3<int32_t, T>(c, a, b, o, kGrainCheap, [](int32_t z, T x, T y) { return z != 0 ? x : y; });
  else if (c.dtype == F32)
    map3<float, T>(c, a, b, o, kGrainCheap, [](float z, T x, T y) { return z != 0 ? x : y; });
  else
    map3<double, T>(c, a, b, o, kGrainCheap, [](double z, T x, T y) { return z != 0 ? x : y; });
}

// ---------------------------------------------------------------------------------------------------------
// Fused activations. The activation is applied to the bias sum rounded to T, and the gradient factors are
// the same expressions as the unfused rules (tanh: 1 - y^2, sigmoid: y (1 - y)), so fused and unfused agree
// up to how the compiler contracts multiply-adds.
template <class T, int ACT>
void bias_act_typed(const View& x, const View* b, void* o) {
  constexpr i64 G = ACT == A_RELU ? kGrainCheap : kGrainCostly;
  if (b)
    map2<T, T, T>(x, *b, o, G, [](T v, T c) { return act_apply<T>(ACT, T(v + c)); });
  else
    map1<T, T>(x, o, G, [](T v) { return act_apply<T>(ACT, v); });
}

template <class T, int ACT>
void act_grad_typed(const View& y, const View& ct, void* o) {
  if (ACT == A_RELU)
    map2<T, T, T>(y, ct, o, kGrainCheap, [](T v, T g) { return v > 0 ? g : T(0); });
  else if (ACT == A_TANH)
    map2<T, T, T>(y, ct, o, kGrainCheap, [](T v, T g) { return g * T(T(1) - v * v); });
  else
    map2<T, T, T>(y, ct, o, kGrainCheap, [](T v, T g) { return g * T(v * T(T(1) - v)); });
}

template <class T>
void activation_typed(int kind, int act, const View& x, const View* b, void* o) {
  switch (act) {
    case A_RELU: kind == 0 ? bias_act_typed<T, A_RELU>(x, b, o) : act_grad_typed<T, A_RELU>(x, *b, o); break;
    case A_TANH: kind == 0 ? bias_act_typed<T, A_TANH>(x, b, o) : act_grad_typed<T, A_TANH>(x, *b, o); break;
    default: kind == 0 ? bias_act_typed<T, A_SIGMOID>(x, b, o) : act_grad_typed<T, A_SIGMOID>(x, *b, o); break;
  }
}

// ---------------------------------------------------------------------------------------------------------
template <class TI>
void cast_from(const View& x, const Out& out) {
  void* o = out.data;
  constexpr i64 C = kGrainCheap;
  switch (out.dtype) {
    case F32: map1<TI, float>(x, o, C, [](TI v) { return (float)v; }); break;
    case F64: map1<TI, double>(x, o, C, [](TI v) { return (double)v; }); break;
    case I32:
      if (sizeof(TI) <= 4 && (TI)0.5 == 0)  // int32 or bool source: exact
        map1<TI, int32_t>(x, o, C, [](TI v) { return (int32_t)v; });
      else
        map1<TI, int32_t>(x, o, C, [](TI v) { return to_int32((double)v); });
      break;
    default: map1<TI, uint8_t>(x, o, C, [](TI v) { return uint8_t(v != 0); }); break;
  }
}

// ---------------------------------------------------------------------------------------------------------
CR_INLINE int dtype_size(int dt) { return dt == F64 ? 8 : dt == BOOL ? 1 : 4; }

// The element range [lo, hi] a view touches (for overlap detection).
void view_extent(const View& v, i64* lo, i64* hi) {
  i64 a = v.offset, b = v.offset;
  for (int d = 0; d < v.ndim; d++) {
    const i64 span = (v.shape[d] - 1) * v.strides[d];
    if (span < 0) a += span;
    else b += span;
  }
  *lo = a;
  *hi = b;
}

template <class T>
void copy_typed(const View& src, const View& dst) {
  const i64* st[2] = {src.strides, dst.strides};
  Iter<2> it;
  it.init(src.ndim, src.shape, st);
  if (it.size == 0) return;
  const T* sp = static_cast<const T*>(src.data) + src.offset;
  T* dp = static_cast<T*>(dst.data) + dst.offset;
  const i64 ss = it.st[0][it.nd - 1], ds = it.st[1][it.nd - 1];
  par_for(it.size, elem_grain(it.size, kGrainCheap), [&](i64 b, i64 e, int) {
    it.walk(b, e, [&](const i64* off, i64 len) {
      const T* s = sp + off[0];
      T* d = dp + off[1];
      if (ss == 1 && ds == 1) std::memcpy(d, s, len * sizeof(T));
      else if (ds == 1)
        for (i64 i = 0; i < len; i++) d[i] = s[i * ss];
      else
        for (i64 i = 0; i < len; i++) d[i * ds] = s[i * ss];
    });
  });
}

void copy_dispatch(const View& src, const View& dst) {
  switch (dtype_size(src.dtype)) {
    case 8: copy_typed<uint64_t>(src, dst); break;
    case 4: copy_typed<uint32_t>(src, dst); break;
    default: copy_typed<uint8_t>(src, dst); break;
  }
}

}  // namespace

Err unary(int op, const View& x, const Out& out) {
  if (op < 0 || op >= U_COUNT) return "unary: unknown op";
  if (x.dtype == out.dtype) {
    if (x.dtype == F32) return unary_float<float>(op, x, out.data);
    if (x.dtype == F64) return unary_float<double>(op, x, out.data);
    if (x.dtype == I32 && unary_int32(op, x, out.data)) return nullptr;
    if (x.dtype == BOOL && op == U_NOT) {
      map1<uint8_t, uint8_t>(x, out.data, kGrainCheap, [](uint8_t v) { return uint8_t(v == 0); });
      return nullptr;
    }
  }
  const void* xd = x.data;
  const int xt = x.dtype, ot = out.dtype;
  void* od = out.data;
  map1_index(x, kGrainCostly, [&](i64 i, i64 j) { store_double(od, ot, j, unary_ref(op, load_as_double(xd, xt, i))); });
  return nullptr;
}

Err binary(int op, const View& a, const View& b, const Out& out) {
  if (op < 0 || op >= B_COUNT) return "binary: unknown op";
  if (a.ndim != b.ndim) return "binary: operands of different rank";
  for (int d = 0; d < a.ndim; d++)
    if (a.shape[d] != b.shape[d]) return "binary: operands of different shape";
  const bool cmp = op >= B_EQ;
  if (a.dtype == b.dtype) {
    if (cmp && out.dtype == BOOL) {
      bool done = false;
      switch (a.dtype) {
        case F32: done = compare_logic<float>(op, a, b, out.data); break;
        case F64: done = compare_logic<double>(op, a, b, out.data); break;
        case I32: done = compare_logic<int32_t>(op, a, b, out.data); break;
        default: done = compare_logic<uint8_t>(op, a, b, out.data); break;
      }
      if (done) return nullptr;
    } else if (!cmp && out.dtype == a.dtype) {
      bool done = false;
      switch (a.dtype) {
        case F32: done = arith_float<float>(op, a, b, out.data); break;
        case F64: done = arith_float<double>(op, a, b, out.data); break;
        case I32: done = arith_int32(op, a, b, out.data); break;
        default: break;
      }
      if (done) return nullptr;
    }
  }
  const void* ad = a.data;
  const void* bd = b.data;
  void* od = out.data;
  const int at = a.dtype, bt = b.dtype, ot = out.dtype;
  const bool int32 = at == I32;
  map2_index(a, b, kGrainCostly, [&](i64 i, i64 j, i64 k) {
    store_double(od, ot, k, binary_ref(op, load_as_double(ad, at, i), load_as_double(bd, bt, j), int32));
  });
  return nullptr;
}

Err where(const View& c, const View& a, const View& b, const Out& out) {
  if (a.dtype != out.dtype || b.dtype != out.dtype) return "where: a, b and out must share a dtype";
  if (c.ndim != a.ndim || c.ndim != b.ndim) return "where: operands of different rank";
  for (int d = 0; d < c.ndim; d++)
    if (c.shape[d] != a.shape[d] || c.shape[d] != b.shape[d]) return "where: operands of different shape";
  switch (out.dtype) {
    case F32: where_typed<float>(c, a, b, out.data); break;
    case F64: where_typed<double>(c, a, b, out.data); break;
    case I32: where_typed<int32_t>(c, a, b, out.data); break;
    default: where_typed<uint8_t>(c, a, b, out.data); break;
  }
  return nullptr;
}

Err activation(int kind, int act, const View& x, const View* b, const Out& out) {
  if (act < 0 || act >= A_COUNT || kind < 0 || kind > 1) return "activation: unknown op";
  if (kind == 1 && !b) return "activation: the gradient needs the cotangent";
  if (x.dtype != out.dtype || (b && b->dtype != x.dtype)) return "activation: operands and out must share a dtype";
  if (x.dtype != F32 && x.dtype != F64) return "activation: expected float32 or float64";
  if (b) {
    if (b->ndim != x.ndim) return "activation: operands of different rank";
    for (int d = 0; d < x.ndim; d++)
      if (b->shape[d] != x.shape[d]) return "activation: operands of different shape";
  }
  if (x.dtype == F32) activation_typed<float>(kind, act, x, b, out.data);
  else activation_typed<double>(kind, act, x, b, out.data);
  return nullptr;
}

Err cast(const View& x, const Out& out) {
  switch (x.dtype) {
    case F32: cast_from<float>(x, out); break;
    case F64: cast_from<double>(x, out); break;
    case I32: cast_from<int32_t>(x, out); break;
    default: cast_from<uint8_t>(x, out); break;
  }
  return nullptr;
}

Err copy(const View& src, const View& dst) {
  if (src.dtype != dst.dtype) return "copy: source and destination dtypes differ";
  if (src.ndim != dst.ndim) return "copy: source and destination ranks differ";
  for (int d = 0; d < src.ndim; d++)
    if (src.shape[d] != dst.shape[d]) return "copy: source and destination shapes differ";
  const i64 n = shape_size(src.ndim, src.shape);
  if (n == 0) return nullptr;
  // Overlapping source and destination in one buffer: stage the source through a contiguous copy.
  const int es = dtype_size(src.dtype);
  i64 slo, shi, dlo, dhi;
  view_extent(src, &slo, &shi);
  view_extent(dst, &dlo, &dhi);
  const char* s0 = static_cast<const char*>(src.data) + slo * es;
  const char* s1 = static_cast<const char*>(src.data) + (shi + 1) * es;
  const char* d0 = static_cast<const char*>(dst.data) + dlo * es;
  const char* d1 = static_cast<const char*>(dst.data) + (dhi + 1) * es;
  if (s0 < d1 && d0 < s1) {
    void* tmp = std::malloc((size_t)(n * es));
    if (!tmp) return "copy: out of memory";
    View t = src;
    t.data = tmp;
    t.offset = 0;
    contiguous_strides(src.ndim, src.shape, t.strides);
    copy_dispatch(src, t);
    copy_dispatch(t, dst);
    std::free(tmp);
    return nullptr;
  }
  copy_dispatch(src, dst);
  return nullptr;
}

}  // namespace CR_ISA_NS
}  // namespace cr
