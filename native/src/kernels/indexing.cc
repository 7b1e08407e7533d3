// Indexing kernels: gather along an axis and its transpose, scatter_add.
// A gather whose index is broadcast along contiguous trailing axes of x (indexSelect of rows) copies whole rows.
//
//   gather:      out[..., i, ...] = x[..., idx[..., i, ...], ...]      (out has idx's shape)
//   scatter_add: out[..., idx[..., i, ...], ...] += src[..., i, ...]   (out is accumulated into)
// Indices are checked (the backend object is public): one pass over them before the kernel, a min / max per
// run that vectorises, and on a bad index nothing is written; the first bad value found is recorded with
// note_bad_index and the N-API layer throws. Indices in a SharedArrayBuffer (`shared`) could change between
// that pass and their use, so they are instead checked as they are used, branch-free (a bad one reads row 0
// and the output element is then zeroed, or nothing is added); this costs ~30% on a cache-resident gather,
// which is why it is not the default. scatter_add is parallel over the positions off
// the axis: two different such positions never write the same output element, so no atomics are needed.
// float32 scatter sums accumulate in float64 like the js backend (when the output fits a 32 MB buffer;
// larger outputs accumulate in float32 rather than doubling their memory).
#include <cstring>

#include "map.h"
#include "scalar.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

// Whether every index of idx lies in [0, bound); if not, records a bad one (note_bad_index).
bool indices_in_range(const View& idx_in, uint64_t bound) {
  if (shape_size(idx_in.ndim, idx_in.shape) == 0) return true;
  // A broadcast axis (stride 0) repeats the same indices: check them once (indexSelect's index is broadcast
  // over every axis but one, e.g. 128 row indices standing for 128 x 784 positions).
  View idx = idx_in;
  for (int d = 0; d < idx.ndim; d++)
    if (idx.strides[d] == 0) idx.shape[d] = 1;
  const i64* st[1] = {idx.strides};
  Iter<1> it;
  it.init(idx.ndim, idx.shape, st);
  if (it.size == 0) return true;
  const int32_t* ip = static_cast<const int32_t*>(idx.data) + idx.offset;
  if (bound == 0) {  // an empty axis: no index is valid
    note_bad_index(ip[0]);
    return false;
  }
  const int32_t top = bound > (uint64_t)INT32_MAX ? INT32_MAX : (int32_t)(bound - 1);
  const i64 s = it.st[0][it.nd - 1];
  bool bad = false;
  par_for(it.size, elem_grain(it.size, kGrainCheap), [&](i64 b, i64 e, int) {
    it.walk(b, e, [&](const i64* off, i64 len) {
      const int32_t* p = ip + off[0];
      int32_t lo = 0, hi = 0;
      if (s == 1)
        for (i64 i = 0; i < len; i++) {
          lo = p[i] < lo ? p[i] : lo;
          hi = p[i] > hi ? p[i] : hi;
        }
      else
        for (i64 i = 0; i < len; i++) {
          lo = p[i * s] < lo ? p[i * s] : lo;
          hi = p[i * s] > hi ? p[i * s] : hi;
        }
      if (lo >= 0 && hi <= top) return;
      for (i64 i = 0; i < len; i++)
        if (p[i * s] < 0 || p[i * s] > top) {
          note_bad_index(p[i * s]);
          break;
        }
      __atomic_store_n(&bad, true, __ATOMIC_RELAXED);
    });
  });
  return !bad;
}

// Rows at least this long are copied whole (memcpy) by gather_rows.
constexpr i64 kRowMin = 16;

// gather of whole rows (indexSelect's case, e.g. a batch of examples out of a dataset): the axes after `axis`
// are contiguous in x and broadcast (stride 0) in idx, so out[..., i, :] = x[..., idx[..., i], :] is one
// memcpy of `inner` elements per index. Returns false (nothing done) when the layouts are not of this kind.
template <class T>
bool gather_rows(const View& x, int axis, const View& idx, T* out, bool shared) {
  const int nd = idx.ndim;
  i64 inner = 1;
  for (int d = nd - 1; d > axis; d--) {
    if (idx.shape[d] != 1 && (idx.strides[d] != 0 || x.strides[d] != inner)) return false;
    inner *= idx.shape[d];
  }
  if (inner < kRowMin) return false;
  // iteration over the axes up to and including `axis`; out's strides count whole rows
  i64 xst[kMaxDims], ost[kMaxDims];
  contiguous_strides(axis + 1, idx.shape, ost);
  for (int d = 0; d <= axis; d++) {
    ost[d] *= inner;
    xst[d] = d == axis ? 0 : x.strides[d];
  }
  const i64* st[3] = {xst, idx.strides, ost};
  Iter<3> it;
  it.init(axis + 1, idx.shape, st);
  if (it.size == 0) return true;
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const int32_t* ip = static_cast<const int32_t*>(idx.data) + idx.offset;
  const i64 sax = x.strides[axis];
  const i64 sx = it.st[0][it.nd - 1], si = it.st[1][it.nd - 1], so = it.st[2][it.nd - 1];
  const uint64_t bound = (uint64_t)x.shape[axis];
  View outer = idx;  // the indices themselves, without the broadcast row axes
  outer.ndim = axis + 1;
  if (!shared && !indices_in_range(outer, bound)) return true;  // nothing written
  const size_t row_bytes = sizeof(T) * (size_t)inner;
  par_for(it.size, imax<i64>(1, elem_grain(it.size * inner, kGrainCheap) / inner), [&](i64 b, i64 e, int) {
    it.walk(b, e, [&](const i64* off, i64 len) {
      const T* xs = xp + off[0];
      const int32_t* is = ip + off[1];
      T* o = out + off[2];
      for (i64 i = 0; i < len; i++) {
        const i64 v = is[i * si];  // read once: shared indices may change under us
        if (shared && (uint64_t)v >= bound) {  // negative values wrap to huge
          note_bad_index(v);
          std::memset(o + i * so, 0, row_bytes);
          continue;
        }
        std::memcpy(o + i * so, xs + i * sx + v * sax, row_bytes);
      }
    });
  });
  return true;
}

template <class T>
void gather_typed(const View& x, int axis, const View& idx, T* out, bool shared) {
  if (gather_rows<T>(x, axis, idx, out, shared)) return;
  i64 ost[kMaxDims], xst[kMaxDims];
  contiguous_strides(idx.ndim, idx.shape, ost);
  for (int d = 0; d < x.ndim; d++) xst[d] = d == axis ? 0 : x.strides[d];
  const i64* st[3] = {xst, idx.strides, ost};
  Iter<3> it;
  it.init(idx.ndim, idx.shape, st);
  if (it.size == 0) return;
  const T* xp = static_cast<const T*>(x.data) + x.offset;
  const int32_t* ip = static_cast<const int32_t*>(idx.data) + idx.offset;
  const i64 sax = x.strides[axis];
  const i64 sx = it.st[0][it.nd - 1], si = it.st[1][it.nd - 1];
  const uint64_t bound = (uint64_t)x.shape[axis];
  if (!shared) {
    if (!indices_in_range(idx, bound)) return;
    par_for(it.size, elem_grain(it.size, kGrainCheap / 4), [&](i64 b, i64 e, int) {
      it.walk(b, e, [&](const i64* off, i64 len) {
        const T* xs = xp + off[0];
        const int32_t* is = ip + off[1];
        T* o = out + off[2];
        for (i64 i = 0; i < len; i++) o[i] = xs[i * sx + (i64)is[i * si] * sax];
      });
    });
    return;
  }
  if (bound == 0) {  // no index is valid (and none may be read through)
    note_bad_index(ip[0]);
    return;
  }
  par_for(it.size, elem_grain(it.size, kGrainCheap / 4), [&](i64 b, i64 e, int) {
    it.walk(b, e, [&](const i64* off, i64 len) {
      const T* xs = xp + off[0];
      const int32_t* is = ip + off[1];
      T* o = out + off[2];
      // Branch-free check (the loop stays vectorisable): a bad index reads element 0 of its row (bound > 0
      // here) and raises `bad`; the cold pass below then records it and zeroes those outputs.
      bool bad = false;
      for (i64 i = 0; i < len; i++) {
        const i64 v = is[i * si];
        const bool b = (uint64_t)v >= bound;  // negative values wrap to huge
        bad |= b;
        o[i] = xs[i * sx + (b ? 0 : v) * sax];
      }
      if (bad)
        for (i64 i = 0; i < len; i++) {
          const i64 v = is[i * si];
          if ((uint64_t)v >= bound) {
            note_bad_index(v);
            o[i] = 0;
          }
        }
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// A is the accumulator element type: double for float (out may be a float64 staging copy), uint32 for int32.
template <class TS, class A, bool Checked>
void scatter_loop(const View& src, int axis, const View& idx, A* acc, const i64* oshape) {
  // Kept axes (all but `axis`) with src, idx and out strides; the axis is looped inside.
  const int nd = src.ndim;
  i64 ofull[kMaxDims];
  contiguous_strides(nd, oshape, ofull);
  i64 kshape[kMaxDims], ks0[kMaxDims], ks1[kMaxDims], ks2[kMaxDims];
  int nk = 0;
  for (int d = 0; d < nd; d++) {
    if (d == axis) continue;
    kshape[nk] = src.shape[d];
    ks0[nk] = src.strides[d];
    ks1[nk] = idx.strides[d];
    ks2[nk++] = ofull[d];
  }
  const i64* st[3] = {ks0, ks1, ks2};
  Iter<3> it;
  it.init(nk, kshape, st);
  const i64 ai = src.shape[axis];
  if (it.size == 0 || ai == 0) return;
  const TS* sp = static_cast<const TS*>(src.data) + src.offset;
  const int32_t* ip = static_cast<const int32_t*>(idx.data) + idx.offset;
  const i64 ssa = src.strides[axis], isa = idx.strides[axis], osa = ofull[axis];
  const i64 s0 = it.st[0][it.nd - 1], s1 = it.st[1][it.nd - 1], s2 = it.st[2][it.nd - 1];
  const uint64_t bound = (uint64_t)oshape[axis];
  par_for(it.size, imax<i64>(1, 16384 / ai), [&](i64 b, i64 e, int) {
    it.walk(b, e, [&](const i64* off, i64 len) {
      if (ai >= len) {
        // long axis (e.g. the flattened plane of max-pool's backward): one output row per kept position,
        // read and written along the axis, which keeps src, idx and out accesses local
        for (i64 j = 0; j < len; j++) {
          const TS* s = sp + off[0] + j * s0;
          const int32_t* ix = ip + off[1] + j * s1;
          A* o = acc + off[2] + j * s2;
          for (i64 a = 0; a < ai; a++) {
            const i64 v = ix[a * isa];
            if (Checked && (uint64_t)v >= bound) note_bad_index(v);
            else o[v * osa] += (A)s[a * ssa];
          }
        }
        return;
      }
      for (i64 a = 0; a < ai; a++) {
        const TS* s = sp + off[0] + a * ssa;
        const int32_t* ix = ip + off[1] + a * isa;
        A* o = acc + off[2];
        for (i64 j = 0; j < len; j++) {
          const i64 v = ix[j * s1];
          if (Checked && (uint64_t)v >= bound) note_bad_index(v);
          else o[j * s2 + v * osa] += (A)s[j * s0];
        }
      }
    });
  });
}

// Checked: indices in shared memory, tested as they are used (otherwise indices_in_range ran before).
template <class TS, class A>
void scatter_typed(const View& src, int axis, const View& idx, A* acc, const i64* oshape, bool shared) {
  if (shared) scatter_loop<TS, A, true>(src, axis, idx, acc, oshape);
  else scatter_loop<TS, A, false>(src, axis, idx, acc, oshape);
}

}  // namespace

Err gather(const View& x, int axis, const View& idx, const Out& out, int shared) {
  if (idx.dtype != I32) return "gather: indices must be int32";
  if (out.dtype != x.dtype) return "gather: out must have the dtype of x";
  if (x.ndim != idx.ndim || axis < 0 || axis >= (x.ndim > 0 ? x.ndim : 1)) return "gather: rank or axis mismatch";
  if (x.ndim == 0) {  // gather on a scalar along "axis 0": the element itself
    const int32_t v = static_cast<const int32_t*>(idx.data)[idx.offset];
    if (v != 0) {  // the only index into a scalar
      note_bad_index(v);
      return nullptr;
    }
    switch (x.dtype) {
      case F64: *static_cast<double*>(out.data) = static_cast<const double*>(x.data)[x.offset]; break;
      case F32: *static_cast<float*>(out.data) = static_cast<const float*>(x.data)[x.offset]; break;
      case I32: *static_cast<int32_t*>(out.data) = static_cast<const int32_t*>(x.data)[x.offset]; break;
      default: *static_cast<uint8_t*>(out.data) = static_cast<const uint8_t*>(x.data)[x.offset]; break;
    }
    return nullptr;
  }
  for (int d = 0; d < x.ndim; d++)
    if (d != axis && x.shape[d] != idx.shape[d]) return "gather: x and indices differ off the axis";
  switch (x.dtype) {
    case F64: gather_typed<uint64_t>(x, axis, idx, static_cast<uint64_t*>(out.data), shared); break;
    case F32:
    case I32: gather_typed<uint32_t>(x, axis, idx, static_cast<uint32_t*>(out.data), shared); break;
    default: gather_typed<uint8_t>(x, axis, idx, static_cast<uint8_t*>(out.data), shared); break;
  }
  return nullptr;
}

Err scatter_add(const View& src, int axis, const View& idx, const Out& out, const int64_t* oshape, int shared) {
  if (idx.dtype != I32) return "scatterAdd: indices must be int32";
  if (out.dtype != src.dtype) return "scatterAdd: out must have the dtype of src";
  const int nd = src.ndim;
  if (idx.ndim != nd || axis < 0 || axis >= (nd > 0 ? nd : 1)) return "scatterAdd: rank or axis mismatch";
  for (int d = 0; d < nd; d++) {
    if (src.shape[d] != idx.shape[d]) return "scatterAdd: src and indices differ in shape";
    if (d != axis && oshape[d] != idx.shape[d]) return "scatterAdd: out and indices differ off the axis";
  }
  if (nd == 0) {  // a scalar scattered onto itself
    const int64_t one = 1;
    return scatter_add(at_least_1d(src), 0, at_least_1d(idx), out, &one, shared);
  }
  if (!shared && !indices_in_range(idx, (uint64_t)oshape[axis])) return nullptr;  // nothing written
  const i64 osize = shape_size(nd, oshape);
  switch (src.dtype) {
    case F64: scatter_typed<double, double>(src, axis, idx, static_cast<double*>(out.data), oshape, shared); break;
    case F32: {
      float* o = static_cast<float*>(out.data);
      double* acc = osize <= (i64)4 << 20 ? static_cast<double*>(scratch(pool_tid(), 5, sizeof(double) * (size_t)imax<i64>(osize, 1))) : nullptr;
      if (acc) {
        par_for(osize, 65536, [&](i64 b, i64 e, int) {
          for (i64 i = b; i < e; i++) acc[i] = o[i];
        });
        scatter_typed<float, double>(src, axis, idx, acc, oshape, shared);
        par_for(osize, 65536, [&](i64 b, i64 e, int) {
          for (i64 i = b; i < e; i++) o[i] = (float)acc[i];
        });
      } else {
        scatter_typed<float, float>(src, axis, idx, o, oshape, shared);
      }
      break;
    }
    case I32: scatter_typed<int32_t, uint32_t>(src, axis, idx, static_cast<uint32_t*>(out.data), oshape, shared); break;
    default: scatter_typed<uint8_t, uint8_t>(src, axis, idx, static_cast<uint8_t*>(out.data), oshape, shared); break;
  }
  return nullptr;
}

}  // namespace CR_ISA_NS
}  // namespace cr
