// The fused elementwise kernel (jit's fusion, Backend.fused): a tile interpreter.
//
// A program is a list of instructions, each defining one register: an input, a const, or a float unary /
// binary op of earlier registers (FusedProgram in src/backend/backend.ts; 4 int32 per instruction,
// [kind, op, a, b]), followed by one store per output ([4, 0, register, j]: output 0 is `out`, output j > 0
// the view in[nin + j - 1] after the nin inputs, contiguous). The outputs are computed kTile elements at a
// time: for each tile every instruction runs
// over the tile through the scalar functions of the unary / binary kernels themselves (ew_ops.h), reading its
// operands from small register tiles that stay in the L1 cache, so a chain of n ops costs one pass over memory
// instead of n, with the bits of the unfused kernels: each op computes each element with the same code, and
// rounds to the dtype, as the unfused kernel would (the vmath.h functions give an element the same result in a
// vector lane as alone, so where a tile starts does not matter).
//
// Before the tile loop, per call: every register that does not vary across the output becomes one value (a
// const, an input whose every stride is 0, an op of such registers: computed once, as the unfused kernels do
// for a stride-0 operand), each input is classed as flat (contiguous in the output's order: its tile is read
// in place) or gathered (any other strides, incl. negative and partial broadcasts: copied into a tile through
// the strided iterator), ops whose result is never read are dropped, and register tiles are assigned by
// liveness (a tile is reused once its register's last reader has run). An output whose register is an op is
// written by that op straight into the output, with no tile and no copy (the op's later readers read it
// there), unless an input sharing the output's storage is still read after it; other outputs are copied out of
// their tiles after the tile's last instruction. Tiles are split over the thread pool; each tile's work is the
// same on any thread, so the result does not depend on the thread count. Each tile prefetches the flat inputs
// and the outputs of the tile two ahead. A transposed input makes the iteration blocked (2-d outputs only): per
// block of 64 bytes' worth of rows x 256 columns, the gathered inputs are copied into block-shaped panels
// (reading each cache line of a transposed input once), then each row of the block runs as a tile, the flat
// inputs read and the outputs written in place.
//
// An output may be the storage of an input read in the outputs' contiguous layout (jit writes a dying operand
// in place): a tile of the input is read only by the instructions of that tile, and the output is written
// (directly by an op, or copied out at the tile's end) only after the input's last reader in it has run.
//
// A reducing program (FusedProgram.reduce, jit's reduction fusion) ends in [5, op, register, mask] after its
// stores: the register is also folded, per tile, into the reduction over the axes in `mask` (bit d: axis d) of
// the inputs' shape. Then `out` is the reduced output (`shape` is its shape: the inputs' without those axes)
// and every stored output is a view after the inputs. Sums accumulate in double (both dtypes), max / min in
// the dtype (NaN sticks), in the reduce kernel's order wherever the materialised register would be reduced by
// it with the same association (reduce.cc):
//  - the reduced axes are the innermost ones (size-1 axes aside; so each output is one contiguous run of R
//    elements of the register): per output, L independent lane accumulators over whole blocks of L
//    elements (element r to lane r % L; L = 16 for sums, 128 bytes of T for max / min) combined in lane
//    order, then the tail in order, as reduce_run does when R >= 32 (R < 32: one accumulator in order); rows
//    are split over the threads (each row's fold is sequential, so the thread count does not matter);
//  - otherwise every output accumulates its elements in row-major order of the reduced axes on one thread
//    (reduce.cc's "outer" order, its order for strided runs); only where reduce.cc would use lanes over a
//    contiguous inner run of 32 or more reduced elements between kept axes does the association differ.
//
// Everything is checked first (the N-API layer has checked the views against their buffers and the output's
// size): dtypes, ranks and shapes of the inputs, instruction kinds, op codes (float ops only: not `not`, not a
// comparison), registers defined before use, const and input indices in range, the number of inputs, the
// stores (after every other instruction, outputs numbered in order) and the output views' layout.
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "dot_ep.h"
#include "ew_ops.h"
#include "map.h"

namespace cr {
namespace CR_ISA_NS {
namespace {

// Instruction kinds of FusedProgram.code (FUSED_INPUT ... in src/backend/fused.ts).
constexpr int kInput = 0, kConst = 1, kUnary = 2, kBinary = 3, kStore = 4, kReduce = 5;
// The most instructions a program may have (jit's groups have at most 256 ops and their operands).
constexpr i64 kMaxInstr = 4096;

// How the tile loop treats a register.
enum Mode : int {
  M_DEAD,    // never read (and not the result): skipped
  M_FIXED,   // one value for the whole output
  M_FLAT,    // an input contiguous in the output's order: its tile is read in place
  M_GATHER,  // an input with other strides: its tile is copied into a register tile
  M_OP,      // a unary / binary op computed per tile
};

struct Ins {
  int kind, op, a, b;
  int mode;
  int buf;    // register tile (M_OP, M_GATHER; a blocked iteration's M_GATHER: its panel); -1: none
  int dst;    // M_OP: the output it is written straight into (its tile then), or -1
  bool fa, fb;  // M_OP: operand a / b is M_FIXED (read with stride 0)
};

// Elements per tile: 256 (1 KiB float32, 2 KiB float64 register tiles; a multiple of every vector width, and at
// least a blocked iteration's row, kBlockCols). With the inputs and outputs of the tile two ahead prefetched into
// L1 (an optimizer update: 7 streams), 4 KiB tiles put 56 KiB in flight, more than the L1 holds; 1 KiB float32
// tiles ran the MLP step's Adam updates 5-10% faster in the step (p25 of 60 calls each, interleaved with eager,
// addons alternated: 401K elements 422-465 against 472-495 us, 131K 131-156 against 146-155 us; 1 KiB tiles
// prefetched 4 ahead: 482-542 us).
constexpr i64 kTileElems = 256;
template <class T>
constexpr i64 tile_of() {
  return kTileElems;
}

template <class T>
CR_INLINE void unary_row(int op, const T* x, T* d, i64 len) {
  bool libm = false;  // sin, cos, tan beyond the vector functions' range (see trig_or_libm)
  if constexpr (trig_op<T>(U_SIN)) {
    if (trig_op<T>(op)) libm = trig_libm_any(reinterpret_cast<const float*>(x), len);
  }
  with_float_unary<T>(op, [&](auto f, i64) {
    if (libm) {
      for (i64 j = 0; j < len; j++) d[j] = trig_or_libm<T>(op, x[j], f);
      return;
    }
    const T* __restrict s = x;
    T* __restrict o = d;
    for (i64 j = 0; j < len; j++) o[j] = f(s[j]);
  });
}

// At most one of the operands is fixed (an op of two fixed registers is fixed itself).
template <class T>
CR_INLINE void binary_row(int op, const T* x, bool fx, const T* y, bool fy, T* d, i64 len) {
  with_float_binary<T>(op, [&](auto f, i64) {
    const T* __restrict p = x;
    const T* __restrict q = y;
    T* __restrict o = d;
    if (!fx && !fy) {
      for (i64 j = 0; j < len; j++) o[j] = f(p[j], q[j]);
    } else if (fy) {
      const T v = q[0];
      for (i64 j = 0; j < len; j++) o[j] = f(p[j], v);
    } else {
      const T v = p[0];
      for (i64 j = 0; j < len; j++) o[j] = f(v, q[j]);
    }
  });
}

// Elements [t0, t0 + len) (output order) of an input into d.
template <class T>
CR_INLINE void gather_tile(const Iter<2>& it, const T* base, i64 t0, i64 len, T* d) {
  const i64 ss = it.st[0][it.nd - 1];
  it.walk(t0, t0 + len, [&](const i64* off, i64 run) {
    const T* s = base + off[0];
    T* o = d + (off[1] - t0);
    if (ss == 1) std::memcpy(o, s, (size_t)run * sizeof(T));
    else
      for (i64 j = 0; j < run; j++) o[j] = s[j * ss];
  });
}

// Elements [i0, i0 + r) x [j0, j0 + c) of a 2-d operand (strides s0, s1) into d, row-major. An operand whose
// rows are the longer stride (a transpose) is read down its columns, so each cache line it loads serves r
// elements of the block.
template <class T>
CR_INLINE void gather_block(const T* base, i64 s0, i64 s1, i64 i0, i64 j0, i64 r, i64 c, T* d) {
  const T* p = base + i0 * s0 + j0 * s1;
  if ((s0 < 0 ? -s0 : s0) < (s1 < 0 ? -s1 : s1)) {
    for (i64 jj = 0; jj < c; jj++) {
      const T* q = p + jj * s1;
      for (i64 ii = 0; ii < r; ii++) d[ii * c + jj] = q[ii * s0];
    }
  } else {
    for (i64 ii = 0; ii < r; ii++) {
      const T* q = p + ii * s0;
      if (s1 == 1) std::memcpy(d + ii * c, q, (size_t)c * sizeof(T));
      else
        for (i64 jj = 0; jj < c; jj++) d[ii * c + jj] = q[jj * s1];
    }
  }
}

// A checked program and the per-call plan of its registers (memory from one malloc).
struct Prog {
  int ninstr = 0, last = 0, nbuf = 0, nops = 0;
  int nin = 0, nout = 0;
  i64 nelem = 0;  // elements of each stored output (the output's shape, or the reduction's domain)
  int out_reg[kMaxListViews + 1];
  void* out_data[kMaxListViews + 1];  // each output's first element
  bool out_direct[kMaxListViews + 1];  // written by its register's op, with no copy
  bool out_fetch[kMaxListViews + 1];   // prefetched for writing (not the storage of a flat input, which is)
  int npanel = 0;                      // a blocked iteration's gathered inputs (one panel each)
  // Blocked iteration: the output is 2-d (size-1 axes aside, extents A x B along axes d0, d1) and an input
  // is read transposed; tiles are then blocks of the output, each input's strides along d0, d1 in st0, st1.
  // Per block, the gathered inputs are copied into panels (block-shaped), then the program runs row by row
  // with the flat inputs read and the outputs written in place.
  bool blocked = false;
  i64 A = 0, B = 0;
  i64 st0[kMaxListViews], st1[kMaxListViews];
  // The reduction terminal (red_op >= 0): its register, the domain (the inputs' shape) and the fold's plan.
  int red_op = -1, red_reg = -1;
  int dnd = 0;
  i64 dshape[kMaxDims];
  bool red_inner = false;  // the reduced axes are the innermost: output k is the run [k R, (k + 1) R)
  i64 K = 0, R = 0;        // outputs, reduced elements per output
  Iter<1> acc_it;          // over the domain, with each element's output offset (0 stride along reduced axes)
  Ins* ins = nullptr;
  Iter<2>* iters = nullptr;  // per input, over (input strides, output strides)
  int* input_mode = nullptr;   // per input: M_FIXED, M_FLAT or M_GATHER
  // plan()'s space: the fixed values (ninstr of float64 at most), then last_use and the free list (ninstr ints
  // each)
  void* fixed = nullptr;
  // The memory of all of the above: `small` for short programs of few inputs (the common case; a one-element
  // jitted x * y + z paid two malloc / free pairs per call), else one malloc.
  void* mem = nullptr;
  alignas(64) char small[4096];
  Prog() = default;
  Prog(const Prog&) = delete;  // the pointers above may point into `small`
  Prog& operator=(const Prog&) = delete;
  ~Prog() {
    if (mem != small) std::free(mem);
  }
};

// Decode and check the program against the inputs; class the inputs. nullptr or the problem.
Err decode(int nd, const int64_t* shape, const View& code, const View& consts, const Out& out, const Views& in,
           Prog& P, bool rows_only = false) {
  const int dtype = out.dtype;
  if (code.dtype != I32 || code.ndim != 1) return "the program code must be a 1-d int32 view";
  if (consts.dtype != F64 || consts.ndim != 1) return "the program consts must be a 1-d float64 view";
  const i64 len = code.shape[0];
  if (len % 4 != 0) return err_fmt("the program code has %lld ints, not 4 per instruction", (long long)len);
  if (len == 0) return "a program needs at least one instruction";
  if (len / 4 > kMaxInstr) return err_fmt("a program has at most %lld instructions, got %lld", (long long)kMaxInstr, (long long)(len / 4));
  const int32_t* c = static_cast<const int32_t*>(code.data) + code.offset;
  const i64 cs = code.strides[0];
  int total = (int)(len / 4);
  // A reducing program: the domain is the inputs' shape, `shape` the reduced output's.
  int mask = 0;
  if (c[(4 * (total - 1)) * cs] == kReduce) {
    const int i = total - 1;
    P.red_op = c[(4 * i + 1) * cs], P.red_reg = c[(4 * i + 2) * cs], mask = c[(4 * i + 3) * cs];
    total--;
    if (P.red_op != R_SUM && P.red_op != R_MAX && P.red_op != R_MIN)
      return err_fmt("the reduction's op code %d is not sum, max or min", P.red_op);
    if (in.n == 0) return "a reducing program needs an input (its shape)";
    const View& v0 = in.v[0];
    if (v0.ndim > 30 || (mask >> v0.ndim) != 0 || mask < 0)
      return err_fmt("the reduction's axis mask %d does not fit rank %d", mask, v0.ndim);
    P.dnd = v0.ndim;
    int kd = 0;
    bool same = true;
    for (int d = 0; d < v0.ndim; d++) {
      P.dshape[d] = v0.shape[d];
      if (!((mask >> d) & 1)) same = same && kd < nd && shape[kd++] == v0.shape[d];
    }
    if (!same || kd != nd) return "the output's shape is not the inputs' without the reduced axes";
    nd = P.dnd;
    shape = P.dshape;
  }
  if (in.n > kMaxListViews) return err_fmt("a program takes at most %d views, got %d", kMaxListViews, in.n);
  for (int k = 0; k < in.n; k++) {
    const View& v = in.v[k];
    if (v.dtype != dtype) return err_fmt("input %d's dtype differs from the output's", k);
    bool same = v.ndim == nd;
    for (int d = 0; same && d < nd; d++) same = v.shape[d] == shape[d];
    if (!same) return err_fmt("input %d's shape is not the output's (inputs come broadcast to it)", k);
  }
  // the stores: after every other instruction, output j the j-th
  int first_store = total;
  while (first_store > 0 && c[(4 * (first_store - 1)) * cs] == kStore) first_store--;
  P.ninstr = first_store;
  P.nout = total - first_store;
  const bool red = P.red_op >= 0;
  if (P.ninstr == 0) return "a program needs at least one instruction before its stores";
  if (P.nout == 0 && !red) return "a program needs at least one store";
  // without a reduction, output 0 is `out` and the others views after the inputs; with one, all are views
  const int nviews = P.nout - (red ? 0 : 1);
  if (nviews > in.n) return err_fmt("a program stores %d outputs, but only %d views came", P.nout, in.n + 1);
  P.nin = in.n - nviews;
  if (red && P.nin < 1) return "a reducing program needs an input (its shape)";
  if (red && (P.red_reg < 0 || P.red_reg >= P.ninstr))
    return err_fmt("the reduction reads register %d, not an instruction's", P.red_reg);
  P.last = P.ninstr - 1;
  for (int j = 0; j < P.nout; j++) {
    const int i = P.ninstr + j;
    const int reg = c[(4 * i + 2) * cs], slot = c[(4 * i + 3) * cs];
    if (reg < 0 || reg >= P.ninstr) return err_fmt("store %d: register %d is not an instruction's", j, reg);
    if (slot != j) return err_fmt("store %d writes output %d (stores must come in output order)", j, slot);
    P.out_reg[j] = reg;
  }
  const size_t es = dtype == F32 ? 4 : 8;
  if (!red) P.out_data[0] = out.data;
  for (int j = red ? 0 : 1; j < P.nout; j++) {
    const View& v = in.v[P.nin + j - (red ? 0 : 1)];
    if (red && (v.ndim != nd || v.dtype != dtype)) return err_fmt("output %d is not of the inputs' shape", j);
    i64 expect = 1;
    for (int d = nd - 1; d >= 0; d--) {
      if (v.shape[d] != 1 && v.strides[d] != expect) return err_fmt("output %d is not contiguous", j);
      expect *= v.shape[d];
    }
    P.out_data[j] = static_cast<char*>(v.data) + (size_t)v.offset * es;
  }
  const size_t fixed_bytes = (sizeof(double) + 2 * sizeof(int)) * (size_t)P.ninstr;
  const size_t bytes = sizeof(Ins) * P.ninstr + sizeof(Iter<2>) * in.n + fixed_bytes + sizeof(int) * in.n;
  P.mem = bytes <= sizeof(P.small) ? static_cast<void*>(P.small) : std::malloc(bytes);
  if (!P.mem) return "out of memory";
  P.ins = static_cast<Ins*>(P.mem);
  P.iters = reinterpret_cast<Iter<2>*>(P.ins + P.ninstr);
  P.fixed = P.iters + in.n;  // (8-byte aligned: Iter's members are)
  P.input_mode = reinterpret_cast<int*>(static_cast<char*>(P.fixed) + fixed_bytes);
  const i64 nconst = consts.shape[0];
  int reads = 0;  // 1 + the largest input index read
  for (int i = 0; i < P.ninstr; i++) {
    Ins& s = P.ins[i];
    s.kind = c[(4 * i) * cs], s.op = c[(4 * i + 1) * cs], s.a = c[(4 * i + 2) * cs], s.b = c[(4 * i + 3) * cs];
    s.mode = M_DEAD, s.buf = -1, s.dst = -1, s.fa = s.fb = false;
    switch (s.kind) {
      case kInput:
        if (s.a < 0 || s.a >= P.nin) return err_fmt("instruction %d reads input %d of %d", i, s.a, P.nin);
        reads = imax(reads, s.a + 1);
        break;
      case kConst:
        if (s.a < 0 || s.a >= nconst) return err_fmt("instruction %d reads const %d of %lld", i, s.a, (long long)nconst);
        break;
      case kUnary:
        if (s.op < 0 || s.op >= U_COUNT || s.op == U_NOT)
          return err_fmt("instruction %d: unary op code %d is not a float elementwise op", i, s.op);
        if (s.a < 0 || s.a >= i) return err_fmt("instruction %d: operand a = %d is not an earlier register", i, s.a);
        break;
      case kBinary:
        if (s.op < 0 || s.op > B_ATAN2)
          return err_fmt("instruction %d: binary op code %d is not a float elementwise op", i, s.op);
        if (s.a < 0 || s.a >= i) return err_fmt("instruction %d: operand a = %d is not an earlier register", i, s.a);
        if (s.b < 0 || s.b >= i) return err_fmt("instruction %d: operand b = %d is not an earlier register", i, s.b);
        break;
      default: return err_fmt("instruction %d: unknown kind %d", i, s.kind);
    }
  }
  if (reads != P.nin) return err_fmt("the program reads %d input(s), got %d", reads, P.nin);
  // Class the inputs: the iterator drops size-1 axes and merges axes the input and the output both step
  // through linearly, so a contiguous input is one axis of stride 1 and a broadcast value has only stride 0.
  i64 ost[kMaxDims];
  contiguous_strides(nd, shape, ost);
  for (int k = 0; k < P.nin; k++) {
    const i64* st[2] = {in.v[k].strides, ost};
    Iter<2>& it = P.iters[k];
    it.init(nd, shape, st);
    bool zero = true;
    for (int d = 0; d < it.nd; d++) zero = zero && it.st[0][d] == 0;
    P.input_mode[k] = zero ? M_FIXED : it.nd == 1 && it.st[0][0] == 1 ? M_FLAT : M_GATHER;
  }
  // A transposed input (the weight gradients jit's programs read as transposes of a matrix product) read in
  // output order touches a new cache line per element: iterate over 2-d blocks instead.
  int d0 = -1, d1 = -1, big = 0;
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 1) continue;
    big++;
    if (d0 < 0) d0 = d;
    else d1 = d;
  }
  if (big == 2 && shape[d0] >= 16 && shape[d1] >= 16 && !rows_only) {
    for (int k = 0; k < P.nin; k++) {
      const i64 s0 = in.v[k].strides[d0], s1 = in.v[k].strides[d1];
      P.st0[k] = s0, P.st1[k] = s1;
      if (P.input_mode[k] == M_GATHER && s1 != 0 && (s0 < 0 ? -s0 : s0) < (s1 < 0 ? -s1 : s1)) P.blocked = true;
    }
  }
  if (red) {
    P.blocked = false;  // a reduction folds in the domain's row-major order
    // each element's output offset: the reduced output's contiguous strides, 0 along reduced axes
    i64 ks[kMaxDims], kst[kMaxDims], ast[kMaxDims];
    int kn = 0;
    for (int d = 0; d < nd; d++)
      if (!((mask >> d) & 1)) ks[kn++] = shape[d];
    contiguous_strides(kn, ks, kst);
    P.K = shape_size(kn, ks);
    P.R = 1;
    int last_kept = -1, first_red = nd;
    for (int d = 0, j = 0; d < nd; d++) {
      if ((mask >> d) & 1) {
        ast[d] = 0;
        P.R *= shape[d];
        if (shape[d] != 1 && first_red == nd) first_red = d;
      } else {
        ast[d] = kst[j++];
        if (shape[d] != 1) last_kept = d;
      }
    }
    P.red_inner = last_kept < first_red;
    const i64* st[1] = {ast};
    P.acc_it.init(nd, shape, st);
  }
  if (P.blocked) P.A = shape[d0], P.B = shape[d1];
  P.nelem = shape_size(nd, shape);
  return nullptr;
}

// Modes (fixed values computed into `fixed`), liveness and register tiles.
template <class T>
void plan(Prog& P, const View& consts, const Views& in, T* fixed) {
  Ins* ins = P.ins;
  const double* cv = static_cast<const double*>(consts.data) + consts.offset;
  for (int i = 0; i < P.ninstr; i++) {
    Ins& s = ins[i];
    if (s.kind == kInput) {
      s.mode = P.input_mode[s.a];
      if (s.mode == M_FIXED) fixed[i] = static_cast<const T*>(in.v[s.a].data)[in.v[s.a].offset];
    } else if (s.kind == kConst) {
      s.mode = M_FIXED;
      fixed[i] = (T)cv[s.a * consts.strides[0]];
    } else {
      s.fa = ins[s.a].mode == M_FIXED;
      s.fb = s.kind == kBinary && ins[s.b].mode == M_FIXED;
      if (s.fa && (s.kind == kUnary || s.fb)) {  // computed once, like the unfused kernels' stride-0 paths
        s.mode = M_FIXED;
        if (s.kind == kUnary) unary_row<T>(s.op, &fixed[s.a], &fixed[i], 1);
        else with_float_binary<T>(s.op, [&](auto f, i64) { fixed[i] = f(fixed[s.a], fixed[s.b]); });
      } else {
        s.mode = M_OP;
      }
    }
  }
  // Registers the outputs need (backwards), each one's last reader, then tiles by liveness.
  int* last_use = reinterpret_cast<int*>(fixed + P.ninstr);  // (space reserved by the caller)
  int* free_list = last_use + P.ninstr;
  for (int i = 0; i < P.ninstr; i++) last_use[i] = -1;
  for (int j = 0; j < P.nout; j++) last_use[P.out_reg[j]] = P.ninstr;  // read at the end
  if (P.red_op >= 0) last_use[P.red_reg] = P.ninstr;
  for (int i = P.last; i >= 0; i--) {
    Ins& s = ins[i];
    if (last_use[i] < 0) {
      if (s.mode != M_FIXED) s.mode = M_DEAD;
      continue;
    }
    if (s.mode != M_OP) continue;
    P.nops++;
    if (last_use[s.a] < 0) last_use[s.a] = i;
    if (s.kind == kBinary && last_use[s.b] < 0) last_use[s.b] = i;
  }
  // Outputs written straight by their register's op (no tile, no copy): every op result stored, unless an
  // input whose storage overlaps the output is still read after that op (an in-place output may be written
  // once its input's last reader has run: each op reads element e of its operands before writing element e)
  // or is read other than in the output's own layout (a flat input at the output's first element).
  int in_last[kMaxListViews];
  for (int k = 0; k < P.nin; k++) in_last[k] = -2;  // not read
  for (int i = 0; i <= P.last; i++)
    if (ins[i].kind == kInput && ins[i].mode != M_DEAD) in_last[ins[i].a] = imax(in_last[ins[i].a], last_use[i]);
  const size_t es = sizeof(T);
  for (int j = 0; j < P.nout; j++) {
    P.out_direct[j] = false;
    const int r = P.out_reg[j];
    if (ins[r].mode != M_OP || ins[r].dst >= 0) continue;
    const char* o0 = static_cast<const char*>(P.out_data[j]);
    const char* o1 = o0 + (size_t)P.nelem * es;
    bool ok = true;
    for (int k = 0; ok && k < P.nin; k++) {
      if (in_last[k] == -2 || P.input_mode[k] == M_FIXED) continue;  // (a fixed value was read in plan)
      const View& v = in.v[k];
      const char* base = static_cast<const char*>(v.data) + (size_t)v.offset * es;
      i64 lo = 0, hi = 0;
      for (int d = 0; d < v.ndim; d++) {
        const i64 e = v.strides[d] * (v.shape[d] - 1);
        if (e < 0) lo += e;
        else hi += e;
      }
      const char* i0 = base + lo * (i64)es;
      const char* i1 = base + (hi + 1) * (i64)es;
      if (i1 <= o0 || o1 <= i0) continue;  // disjoint
      ok = P.input_mode[k] == M_FLAT && base == o0 && in_last[k] <= r;
    }
    if (ok) {
      ins[r].dst = j;
      P.out_direct[j] = true;
    }
  }
  for (int j = 0; j < P.nout; j++) {
    P.out_fetch[j] = true;
    for (int k = 0; k < P.nin; k++)
      if (P.input_mode[k] == M_FLAT && static_cast<const char*>(in.v[k].data) + (size_t)in.v[k].offset * es ==
                                           static_cast<const char*>(P.out_data[j]))
        P.out_fetch[j] = false;
  }
  int nfree = 0;
  for (int i = 0; i < P.ninstr; i++) {
    Ins& s = ins[i];
    if (s.mode == M_GATHER && P.blocked) s.buf = P.npanel++;  // a panel, filled per block
    else if (s.mode == M_GATHER || (s.mode == M_OP && s.dst < 0))
      s.buf = nfree > 0 ? free_list[--nfree] : P.nbuf++;
    if (s.mode != M_OP) continue;
    // operands read for the last time here: their tiles are free for later registers (not for this one's)
    auto tile_of_reg = [&](int x) { return (ins[x].mode == M_OP || (ins[x].mode == M_GATHER && !P.blocked)) ? ins[x].buf : -1; };
    const int ta = tile_of_reg(s.a);
    if (ta >= 0 && last_use[s.a] == i) free_list[nfree++] = ta;
    if (s.kind == kBinary && s.b != s.a) {
      const int tb = tile_of_reg(s.b);
      if (tb >= 0 && last_use[s.b] == i) free_list[nfree++] = tb;
    }
  }
}

// Block extents of a blocked iteration: br rows (a cache line of a transposed input's column) x bc columns.
template <class T>
constexpr i64 block_rows() {
  return 64 / (i64)sizeof(T);
}
constexpr i64 kBlockCols = 256;
static_assert(kBlockCols <= kTileElems, "a blocked iteration runs each block row as one tile");

// Prefetch elements [next, next + len) (output order) of the flat inputs and of the outputs: the tile two
// ahead of this one (measured a little better than the next: 1.12-1.15x eager's adamUpdate against 1.12-1.21x,
// none 1.24-1.41x, prefetching spread over the ops instead 1.17-1.27x). Each op streams a tile of one input
// at a time, a page or less, which the hardware prefetchers (stopping at page boundaries) leave to miss at
// every tile's start.
template <class T>
CR_INLINE void prefetch_tile(const Prog& P, const Views& in, i64 next, i64 len) {
  if (next < 0 || next >= P.nelem) return;
  const i64 bytes = imin(len, P.nelem - next) * (i64)sizeof(T);
  for (int k = 0; k < P.nin; k++) {
    if (P.input_mode[k] != M_FLAT) continue;
    const char* p = reinterpret_cast<const char*>(static_cast<const T*>(in.v[k].data) + in.v[k].offset + next);
    for (i64 b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 3);
  }
  for (int j = 0; j < P.nout; j++) {
    if (!P.out_fetch[j]) continue;
    const char* p = reinterpret_cast<const char*>(static_cast<const T*>(P.out_data[j]) + next);
    for (i64 b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 1, 3);
  }
}

// Elements [t0, t0 + len) of the output (output order), each instruction over them in turn; `next` (or -1)
// is where the tile to prefetch starts. A blocked iteration's gathered inputs are read from their
// panels (`pan`, row offset prow) instead.
template <class T>
void run_tile(const Prog& P, const Views& in, i64 t0, i64 len, T* tiles, const T** cur, i64 next = -1,
              const T* pan = nullptr, i64 prow = 0) {
  constexpr i64 tile = tile_of<T>();
  prefetch_tile<T>(P, in, next, len);
  constexpr i64 panel = block_rows<T>() * kBlockCols;
  for (int i = 0; i <= P.last; i++) {
    const Ins& s = P.ins[i];
    switch (s.mode) {
      case M_FLAT: cur[i] = static_cast<const T*>(in.v[s.a].data) + in.v[s.a].offset + t0; break;
      case M_GATHER: {
        if (pan != nullptr) {
          cur[i] = pan + s.buf * panel + prow;
          break;
        }
        T* d = tiles + s.buf * tile;
        gather_tile<T>(P.iters[s.a], static_cast<const T*>(in.v[s.a].data) + in.v[s.a].offset, t0, len, d);
        cur[i] = d;
        break;
      }
      case M_OP: {
        T* d = s.dst >= 0 ? static_cast<T*>(P.out_data[s.dst]) + t0 : tiles + s.buf * tile;
        if (s.kind == kUnary) unary_row<T>(s.op, cur[s.a], d, len);
        else binary_row<T>(s.op, cur[s.a], s.fa, cur[s.b], s.fb, d, len);
        cur[i] = d;
        break;
      }
      default: break;  // fixed: cur set once; dead: skipped
    }
  }
  for (int j = 0; j < P.nout; j++) {
    if (P.out_direct[j]) continue;
    const int r = P.out_reg[j];
    T* o = static_cast<T*>(P.out_data[j]) + t0;
    if (P.ins[r].mode == M_FIXED) {
      const T v = cur[r][0];
      for (i64 e = 0; e < len; e++) o[e] = v;
    } else {
      std::memmove(o, cur[r], (size_t)len * sizeof(T));  // (an input that is the output's storage: o == src)
    }
  }
}

// One block of a blocked iteration: rows [i0, i0 + r), columns [j0, j0 + c) of the 2-d output. The gathered
// inputs' blocks go into their panels (row-major, rows of c), then each row runs as a tile. The next block
// (rows from ni0, columns [nj0, nj0 + nc); ni0 < 0: none) is prefetched as this one runs: the cache lines
// of its transposed inputs (one per column: no hardware prefetcher follows them), and its first row.
template <class T>
void run_block(const Prog& P, const Views& in, i64 i0, i64 j0, i64 r, i64 c, T* tiles, const T** cur, T* pan,
               i64 ni0, i64 nj0, i64 nc) {
  constexpr i64 panel = block_rows<T>() * kBlockCols;
  for (int i = 0; i <= P.last; i++) {
    const Ins& s = P.ins[i];
    if (s.mode != M_GATHER) continue;
    const T* base = static_cast<const T*>(in.v[s.a].data) + in.v[s.a].offset;
    const i64 s0 = P.st0[s.a], s1 = P.st1[s.a];
    gather_block<T>(base, s0, s1, i0, j0, r, c, pan + s.buf * panel);
    if (ni0 >= 0 && (s0 < 0 ? -s0 : s0) < (s1 < 0 ? -s1 : s1)) {
      const i64 nr = imin(block_rows<T>(), P.A - ni0);
      for (i64 jj = 0; jj < nc; jj++) {
        const T* q = base + ni0 * s0 + (nj0 + jj) * s1;
        __builtin_prefetch(q, 0, 3);
        __builtin_prefetch(q + (nr - 1) * s0, 0, 3);  // (the run may span two lines)
      }
    }
  }
  for (i64 ii = 0; ii < r; ii++) {
    const i64 t0 = (i0 + ii) * P.B + j0;
    run_tile<T>(P, in, t0, c, tiles, cur, ii + 1 < r ? t0 + P.B : ni0 >= 0 ? ni0 * P.B + nj0 : -1, pan, ii * c);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The reduction terminal's fold (see the header): OP's accumulator type, start, step and lane combine are
// reduce.cc's (sums in double, max / min in T, the first NaN sticking).
template <class T, int OP>
struct Fold {
  using A = typename std::conditional<OP == R_SUM, double, T>::type;
  static constexpr int L = 64 / (int)sizeof(A) * 2;
  static CR_INLINE A init() {
    return OP == R_SUM ? A(0) : OP == R_MAX ? -std::numeric_limits<A>::infinity() : std::numeric_limits<A>::infinity();
  }
  static CR_INLINE A step(A a, T x) {
    if (OP == R_SUM) return a + (A)x;
    if (OP == R_MAX) return ((x > a) | (x != x)) ? (A)x : a;
    return ((x < a) | (x != x)) ? (A)x : a;
  }
  static CR_INLINE A combine(A a, A b) { return OP == R_SUM ? a + b : (a != a ? a : step(a, (T)b)); }
};

// One output row of an inner reduction, fed in order: element r of the row goes to lane r % L while r is in
// the whole blocks (rows of 32 or more), the lanes are then combined in order, and the tail follows, as
// reduce_run folds a contiguous run.
template <class T, int OP>
struct RowFold {
  using F = Fold<T, OP>;
  using A = typename F::A;
  static constexpr int L = F::L;
  A lane[L];
  A a;
  i64 full = 0;  // elements folded into lanes (a multiple of L; 0: none)
  bool combined = false;
  void start(i64 R) {
    full = R >= 32 ? R / L * L : 0;
    combined = full == 0;
    for (int l = 0; l < L; l++) lane[l] = F::init();
    a = F::init();
  }
  // elements [r, r + n) of the row
  CR_INLINE void feed(const T* v, bool fixed, i64 r, i64 n) {
    i64 e = r + n, j = 0;
    if (r < full) {
      const i64 le = imin(e, full);
      if (fixed) {
        for (; r < le; r++) lane[r % L] = F::step(lane[r % L], v[0]);
      } else {
        for (; r < le && r % L != 0; r++, j++) lane[r % L] = F::step(lane[r % L], v[j]);
        for (; r + L <= le; r += L, j += L)
          for (int l = 0; l < L; l++) lane[l] = F::step(lane[l], v[j + l]);
        for (; r < le; r++, j++) lane[r % L] = F::step(lane[r % L], v[j]);
      }
    }
    if (r == full && !combined) {
      for (int l = 0; l < L; l++) a = F::combine(a, lane[l]);
      combined = true;
    }
    for (; r < e; r++, j++) a = F::step(a, v[fixed ? 0 : j]);
  }
};

// Run a reducing program: tiles as run_tile computes them, each folded into the outputs as it is done.
// False when out of memory.
template <class T, int OP>
bool reduce_tiles(const Prog& P, const Views& in, T* fixed, T* out, i64 n, size_t tiles_bytes) {
  using F = Fold<T, OP>;
  using A = typename F::A;
  constexpr i64 tile = tile_of<T>();
  const int reg = P.red_reg;
  const bool reg_fixed = P.ins[reg].mode == M_FIXED;
  if (P.red_inner) {
    // rows of R contiguous elements, split over the threads; a tile never spans a chunk's end
    const i64 R = P.R, K = P.K;
    if (R == 0) {
      for (i64 k = 0; k < K; k++) out[k] = (T)F::init();
      return true;
    }
    const i64 grain = imax<i64>(1, elem_grain(n, imax<i64>(kGrainCostly, kGrainCheap / imax(P.nops, 1))) / R);
    par_for(K, grain, [&](i64 b, i64 e, int tid) {
      char* mem = static_cast<char*>(scratch(tid, 0, tiles_bytes + sizeof(T*) * P.ninstr + sizeof(RowFold<T, OP>)));
      if (!mem) return;  // reported by scratch_failed()
      T* tiles = reinterpret_cast<T*>(mem);
      const T** cur = reinterpret_cast<const T**>(mem + tiles_bytes);
      RowFold<T, OP>& rf = *reinterpret_cast<RowFold<T, OP>*>(mem + tiles_bytes + sizeof(T*) * P.ninstr);
      for (int i = 0; i < P.ninstr; i++) cur[i] = &fixed[i];
      i64 k = b, r = 0;  // the row being folded and its next element
      rf.start(R);
      for (i64 t0 = b * R, t1 = e * R; t0 < t1; t0 += tile) {
        const i64 len = imin(tile, t1 - t0);
        run_tile<T>(P, in, t0, len, tiles, cur, t0 + 2 * tile < t1 ? t0 + 2 * tile : -1);
        const T* v = cur[reg];
        for (i64 p = 0; p < len;) {
          const i64 m = imin(len - p, R - r);
          rf.feed(reg_fixed ? v : v + p, reg_fixed, r, m);
          p += m, r += m;
          if (r == R) {
            out[k++] = (T)rf.a;
            r = 0;
            rf.start(R);
          }
        }
      }
    });
    return true;
  }
  // any other axes: one accumulator per output, elements in row-major order, on this thread
  const i64 K = P.K;
  A* acc = static_cast<A*>(std::malloc(sizeof(A) * (size_t)imax<i64>(K, 1)));
  char* mem = static_cast<char*>(scratch(pool_tid(), 0, tiles_bytes + sizeof(T*) * P.ninstr));
  if (!acc || !mem) {
    std::free(acc);
    return acc != nullptr;  // (no scratch: reported by scratch_failed())
  }
  for (i64 k = 0; k < K; k++) acc[k] = F::init();
  T* tiles = reinterpret_cast<T*>(mem);
  const T** cur = reinterpret_cast<const T**>(mem + tiles_bytes);
  for (int i = 0; i < P.ninstr; i++) cur[i] = &fixed[i];
  const Iter<1>& it = P.acc_it;
  const i64 sa = it.st[0][it.nd - 1];
  for (i64 t0 = 0; t0 < n; t0 += tile) {
    const i64 len = imin(tile, n - t0);
    run_tile<T>(P, in, t0, len, tiles, cur, t0 + 2 * tile);
    const T* v = cur[reg];
    i64 p = 0;
    it.walk(t0, t0 + len, [&](const i64* off, i64 run) {
      const T* x = reg_fixed ? v : v + p;
      A* q = acc + off[0];
      if (sa == 0) {
        A a = q[0];
        if (reg_fixed)
          for (i64 j = 0; j < run; j++) a = F::step(a, x[0]);
        else
          for (i64 j = 0; j < run; j++) a = F::step(a, x[j]);
        q[0] = a;
      } else {
        for (i64 j = 0; j < run; j++) q[j * sa] = F::step(q[j * sa], x[reg_fixed ? 0 : j]);
      }
      p += run;
    });
  }
  for (i64 k = 0; k < K; k++) out[k] = (T)acc[k];
  std::free(acc);
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Compiled programs (superinstructions for whole programs). The tile interpreter above runs an optimizer's
// update, e.g. Adam written out in jitted code (13 ops, 4 streams in, 3 out), as 13 passes over each tile:
// 2.5-3.5x the time of eager's hand-written adamUpdate over the same bytes, most of it the passes' loads,
// stores and loop control. Programs of a few common shapes are instead matched, after plan(), against the
// patterns below and run by a loop the compiler generates for that shape: each vector of elements is loaded
// once per input, every op computed in registers, each output stored once.
//
// A pattern is a tree per output over flat inputs (read in the output's order), fixed values (one value for
// the whole output: a const or a broadcast scalar) and earlier outputs; it matches a program whose outputs
// are exactly its outputs (in any store order), op for op and operand for operand (commutative operands are
// not swapped to make a program match). Every op's result passes
// through cr_opaque(), which hides it from the optimiser, so no multiply and add are contracted into an FMA
// (these files compile with -mfma and GCC's default -ffp-contract=fast): each op rounds to the dtype exactly
// as its unfused kernel does, and add, sub, mul, div and sqrt are correctly rounded IEEE operations in a
// vector lane as alone, so the results are the unfused kernels' bits (the vector body, the scalar tail and
// any split over the threads alike), except that the Adam patterns flush subnormals to zero (see PatAdam).
//
// Each output is written only after the same element of every input has been read, so an output may be the
// storage of an input at the same position (jit's donated parameters and moments); any other overlap falls
// back to the tile interpreter.

enum PatKind : int { PK_FLAT, PK_FIXED, PK_OUT, PK_UN, PK_BIN };
// One node: PK_FLAT / PK_FIXED / PK_OUT: a = the variable (flat input, fixed value) or earlier output;
// PK_UN: op (U_SQRT), operand node a; PK_BIN: op (B_ADD, B_SUB, B_MUL, B_DIV), operand nodes a, b.
struct PNode {
  int kind, op, a, b;
};
constexpr int kPatMaxVars = 8, kPatMaxOuts = 4;
// How far ahead (bytes) a compiled loop prefetches each stream.
constexpr long kPatAhead = 1024;

// Hide a value from the optimiser (no contraction across it); it stays in its register.
template <class V>
CR_INLINE V cr_opaque(V v) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+v"(v));
#else
  volatile V w = v;
  v = w;
#endif
  return v;
}

// Vector and scalar operations of the compiled loops: V, W lanes, loadu / storeu / set1 and the ops.
template <class T>
struct ScalarOps {
  using V = T;
  static constexpr int W = 1;
  static CR_INLINE V load(const T* p) { return *p; }
  static CR_INLINE void store(T* p, V v) { *p = v; }
  static CR_INLINE V set1(T x) { return x; }
  static CR_INLINE V add(V a, V b) { return a + b; }
  static CR_INLINE V sub(V a, V b) { return a - b; }
  static CR_INLINE V mul(V a, V b) { return a * b; }
  static CR_INLINE V div(V a, V b) { return a / b; }
  static CR_INLINE V sqrt(V a) { return std::sqrt(a); }
};

#if defined(__x86_64__) || defined(__i386__)
#define CR_VEC_OPS(NAME, T, VT, W_, PRE, SUF)                                              \
  struct NAME {                                                                            \
    using V = VT;                                                                          \
    static constexpr int W = W_;                                                           \
    static CR_INLINE V load(const T* p) { return PRE##_loadu_##SUF(p); }                   \
    static CR_INLINE void store(T* p, V v) { PRE##_storeu_##SUF(p, v); }                   \
    static CR_INLINE V set1(T x) { return PRE##_set1_##SUF(x); }                           \
    static CR_INLINE V add(V a, V b) { return PRE##_add_##SUF(a, b); }                     \
    static CR_INLINE V sub(V a, V b) { return PRE##_sub_##SUF(a, b); }                     \
    static CR_INLINE V mul(V a, V b) { return PRE##_mul_##SUF(a, b); }                     \
    static CR_INLINE V div(V a, V b) { return PRE##_div_##SUF(a, b); }                     \
    static CR_INLINE V sqrt(V a) { return PRE##_sqrt_##SUF(a); }                           \
  };
#if CR_ISA_LEVEL == 2
CR_VEC_OPS(VecOpsF, float, __m512, 16, _mm512, ps)
CR_VEC_OPS(VecOpsD, double, __m512d, 8, _mm512, pd)
#elif CR_ISA_LEVEL == 1
CR_VEC_OPS(VecOpsF, float, __m256, 8, _mm256, ps)
CR_VEC_OPS(VecOpsD, double, __m256d, 4, _mm256, pd)
#else
CR_VEC_OPS(VecOpsF, float, __m128, 4, _mm, ps)
CR_VEC_OPS(VecOpsD, double, __m128d, 2, _mm, pd)
#endif
#undef CR_VEC_OPS
template <class T>
using VecOps = typename std::conditional<sizeof(T) == 4, VecOpsF, VecOpsD>::type;
#else
template <class T>
using VecOps = ScalarOps<T>;
#endif

// Node I of pattern PAT on the loaded inputs x, the fixed values s and the outputs computed so far o.
template <class K, class PAT, int I>
CR_INLINE typename K::V pat_eval(const typename K::V* x, const typename K::V* s, const typename K::V* o) {
  constexpr PNode nd = PAT::nodes[I];
  if constexpr (nd.kind == PK_FLAT) {
    return x[nd.a];
  } else if constexpr (nd.kind == PK_FIXED) {
    return s[nd.a];
  } else if constexpr (nd.kind == PK_OUT) {
    return o[nd.a];
  } else if constexpr (nd.kind == PK_UN) {
    static_assert(nd.op == U_SQRT, "a compiled pattern's unary op is sqrt");
    return cr_opaque(K::sqrt(pat_eval<K, PAT, nd.a>(x, s, o)));
  } else {
    const auto a = pat_eval<K, PAT, nd.a>(x, s, o);
    const auto b = pat_eval<K, PAT, nd.b>(x, s, o);
    static_assert(nd.op == B_ADD || nd.op == B_SUB || nd.op == B_MUL || nd.op == B_DIV,
                  "a compiled pattern's binary ops are add, sub, mul and div");
    if constexpr (nd.op == B_ADD) return cr_opaque(K::add(a, b));
    else if constexpr (nd.op == B_SUB) return cr_opaque(K::sub(a, b));
    else if constexpr (nd.op == B_MUL) return cr_opaque(K::mul(a, b));
    else return cr_opaque(K::div(a, b));
  }
}

template <class K, class PAT, int J>
CR_INLINE void pat_outs(const typename K::V* x, const typename K::V* s, typename K::V* o) {
  if constexpr (J < PAT::nout) {
    o[J] = pat_eval<K, PAT, PAT::roots[J]>(x, s, o);
    pat_outs<K, PAT, J + 1>(x, s, o);
  }
}

// A matched program's streams: the flat inputs (by pattern variable), the outputs (by pattern output) and
// the fixed values.
template <class T>
struct PatArgs {
  const T* x[kPatMaxVars];
  T* o[kPatMaxOuts];
  T s[kPatMaxVars];
};

// Elements [i0, i1) through K's loop (whole vectors from i0; returns where it stopped).
template <class T, class K, class PAT>
CR_INLINE i64 pat_loop(const PatArgs<T>& A, i64 i0, i64 i1) {
  using V = typename K::V;
  // (local copies: the stores, through may-alias vector types, would otherwise reload the pointers)
  const T* xs[PAT::nx];
  T* os[PAT::nout];
  for (int k = 0; k < PAT::nx; k++) xs[k] = A.x[k];
  for (int j = 0; j < PAT::nout; j++) os[j] = A.o[j];
  V s[PAT::ns > 0 ? PAT::ns : 1];
  for (int k = 0; k < PAT::ns; k++) s[k] = K::set1(A.s[k]);
  i64 i = i0;
  if (K::W > 1) {
    // a cache line of every stream per step, the line kAhead bytes on prefetched (outputs that are not also
    // inputs: for writing)
    constexpr i64 line = 64 / (i64)sizeof(T), ahead = kPatAhead / (i64)sizeof(T);
    bool fetch_out[PAT::nout];
    for (int j = 0; j < PAT::nout; j++) {
      fetch_out[j] = true;
      for (int k = 0; k < PAT::nx; k++) fetch_out[j] = fetch_out[j] && os[j] != xs[k];
    }
    for (; i + line <= i1; i += line) {
      if (i + ahead + line <= i1) {
        for (int k = 0; k < PAT::nx; k++) __builtin_prefetch(xs[k] + i + ahead, 0, 3);
        for (int j = 0; j < PAT::nout; j++)
          if (fetch_out[j]) __builtin_prefetch(os[j] + i + ahead, 1, 3);
      }
      for (i64 u = i; u < i + line; u += K::W) {
        V x[PAT::nx], o[PAT::nout];
        for (int k = 0; k < PAT::nx; k++) x[k] = K::load(xs[k] + u);
        pat_outs<K, PAT, 0>(x, s, o);
        for (int j = 0; j < PAT::nout; j++) K::store(os[j] + u, o[j]);
      }
    }
  }
  for (; i + K::W <= i1; i += K::W) {
    V x[PAT::nx], o[PAT::nout];
    for (int k = 0; k < PAT::nx; k++) x[k] = K::load(xs[k] + i);
    pat_outs<K, PAT, 0>(x, s, o);
    for (int j = 0; j < PAT::nout; j++) K::store(os[j] + i, o[j]);
  }
  return i;
}

// The elements before the first at which most streams (outputs counted twice) start a cache line, so that
// the vector loop splits as few loads and stores across lines as it can: 0 .. 64 / sizeof(T) - 1.
template <class T, class PAT>
i64 pat_peel(const PatArgs<T>& A, i64 b) {
  constexpr int L = 64 / (int)sizeof(T);
  int votes[L] = {};
  auto vote = [&](const T* p, int w) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p + b);
    if (a % sizeof(T) != 0) return;
    votes[(L - (int)((a % 64) / sizeof(T))) % L] += w;
  };
  for (int k = 0; k < PAT::nx; k++) vote(A.x[k], 1);
  for (int j = 0; j < PAT::nout; j++) vote(A.o[j], 2);
  int best = 0;
  for (int l = 1; l < L; l++)
    if (votes[l] > votes[best]) best = l;
  return best;
}

// FlushSubnormals in scope for a pattern that flushes (the optimizer updates, as the eager fused Adam), nothing
// otherwise.
template <bool on>
struct FlushIf {};
template <>
struct FlushIf<true> : FlushSubnormals {};

template <class T, class PAT>
void pat_run(const PatArgs<T>& A, i64 n) {
  par_for(n, elem_grain(n, kGrainCostly * 8), [&](i64 b, i64 e, int) {
    const FlushIf<PAT::flush> ftz;
    const i64 h = imin(e, b + pat_peel<T, PAT>(A, b));
    pat_loop<T, ScalarOps<T>, PAT>(A, b, h);
    const i64 i = pat_loop<T, VecOps<T>, PAT>(A, h, e);
    pat_loop<T, ScalarOps<T>, PAT>(A, i, e);
  });
}

// The patterns. pF(v): flat input v; pS(v): fixed value v; pO(j): output j; pU(op, a), pB(op, a, b): ops of
// earlier nodes.
constexpr PNode pF(int v) { return {PK_FLAT, 0, v, 0}; }
constexpr PNode pS(int v) { return {PK_FIXED, 0, v, 0}; }
constexpr PNode pO(int j) { return {PK_OUT, 0, j, 0}; }
constexpr PNode pU(int op, int a) { return {PK_UN, op, a, 0}; }
constexpr PNode pB(int op, int a, int b) { return {PK_BIN, op, a, b}; }

// The moments of every Adam pattern, nodes 0-13: m b1 (2) + g (1 - b1) (5) = m' (6); v b2 (9) + (g g) (1 - b2) (12)
// = v' (13). Flat variables m = 0, g = 1, v = 2; fixed b1 = 0, 1 - b1 = 1, b2 = 2, 1 - b2 = 3.
#define CR_PAT_ADAM_MOMENTS                                                                                      \
  pF(0), pS(0), pB(B_MUL, 0, 1), pF(1), pS(1), pB(B_MUL, 3, 4), pB(B_ADD, 2, 5), pF(2), pS(2), pB(B_MUL, 7, 8), \
      pB(B_MUL, 3, 3), pS(3), pB(B_MUL, 10, 11), pB(B_ADD, 9, 12)

// Adam as jit traces it written out with the step's scalars as inputs (bench/peers/chainrule.ts jitAdamStep):
//   m' = m b1 + g (1 - b1);  v' = v b2 + g^2 (1 - b2);  p' = p - m' a / (sqrt(v') c + eps)
// The Adam patterns run with subnormals flushed to zero, as the eager fused Adam does (optim.cc: on Intel cores
// a converging model's subnormal moments made the update up to 9x slower); with normal values their bits are the
// op-by-op program's.
struct PatAdam {
  static constexpr PNode nodes[] = {
      CR_PAT_ADAM_MOMENTS,
      pF(3), pO(0), pS(4), pB(B_MUL, 15, 16), pO(1), pU(U_SQRT, 18), pS(5), pB(B_MUL, 19, 20), pS(6),
      pB(B_ADD, 21, 22), pB(B_DIV, 17, 23), pB(B_SUB, 14, 24),  // 25: p'
  };
  static constexpr int roots[] = {6, 13, 25};
  static constexpr int nout = 3, nx = 4, ns = 7;
  static constexpr bool flush = true;
};
// The same with the usual denominator sqrt(v') + eps (p' = p - m' a / (sqrt(v') + eps)).
struct PatAdamEps {
  static constexpr PNode nodes[] = {
      CR_PAT_ADAM_MOMENTS,
      pF(3), pO(0), pS(4), pB(B_MUL, 15, 16), pO(1), pU(U_SQRT, 18), pS(5), pB(B_ADD, 19, 20), pB(B_DIV, 17, 21),
      pB(B_SUB, 14, 22),  // 23: p'
  };
  static constexpr int roots[] = {6, 13, 23};
  static constexpr int nout = 3, nx = 4, ns = 6;
  static constexpr bool flush = true;
};
// Adam as the library writes it (optim/functional.ts adamLike: makeTrainStep, the CLI's --jit):
//   m' = m b1 + g (1 - b1);  v' = v b2 + g^2 (1 - b2);  p' = p - (m' / (sqrt(v') / c + eps)) a
// with c = sqrt(1 - b2^t) and a the step size lr / (1 - b1^t). Nodes 14-24 (flat p = 3; fixed c = 4, eps = 5, a = 6):
// p (14), sqrt(v') / c + eps (21), m' / that (22), times a (24).
#define CR_PAT_ADAM_LIB_STEP                                                                                     \
  pF(3), pO(0), pO(1), pU(U_SQRT, 16), pS(4), pB(B_DIV, 17, 18), pS(5), pB(B_ADD, 19, 20), pB(B_DIV, 15, 21), pS(6), \
      pB(B_MUL, 22, 23)
struct PatAdamLib {
  static constexpr PNode nodes[] = {
      CR_PAT_ADAM_MOMENTS, CR_PAT_ADAM_LIB_STEP, pB(B_SUB, 14, 24),  // 25: p'
  };
  static constexpr int roots[] = {6, 13, 25};
  static constexpr int nout = 3, nx = 4, ns = 7;
  static constexpr bool flush = true;
};
// The same for AdamW, whose decoupled decay scales the parameter first: p' = p d - (m' / (sqrt(v') / c + eps)) a.
struct PatAdamWLib {
  static constexpr PNode nodes[] = {
      CR_PAT_ADAM_MOMENTS, CR_PAT_ADAM_LIB_STEP, pS(7), pB(B_MUL, 14, 25), pB(B_SUB, 26, 24),  // 27: p'
  };
  static constexpr int roots[] = {6, 13, 27};
  static constexpr int nout = 3, nx = 4, ns = 8;
  static constexpr bool flush = true;
};
#undef CR_PAT_ADAM_MOMENTS
#undef CR_PAT_ADAM_LIB_STEP
// SGD with momentum: b' = b mu + g;  p' = p - b' lr.
struct PatMomentum {
  static constexpr PNode nodes[] = {
      pF(0), pS(0), pB(B_MUL, 0, 1), pF(1), pB(B_ADD, 2, 3),  // 4: b'
      pF(2), pO(0), pS(1), pB(B_MUL, 6, 7), pB(B_SUB, 5, 8),  // 9: p'
  };
  static constexpr int roots[] = {4, 9};
  static constexpr int nout = 2, nx = 3, ns = 2;
  static constexpr bool flush = false;
};

// Matching state: per pattern variable its input (flat) or register (fixed), per pattern output its
// program output.
struct PatMatch {
  int x[kPatMaxVars], s[kPatMaxVars], out[kPatMaxOuts];
};

// Does register r of the program compute node i of pattern PAT (binding variables in m)?
template <class PAT>
bool pat_match(const Prog& P, int i, int r, PatMatch& m) {
  const PNode& nd = PAT::nodes[i];
  const Ins& s = P.ins[r];
  switch (nd.kind) {
    case PK_FLAT:
      if (s.kind != kInput || s.mode != M_FLAT) return false;
      if (m.x[nd.a] >= 0) return m.x[nd.a] == s.a;
      m.x[nd.a] = s.a;
      return true;
    case PK_FIXED:
      if (s.mode != M_FIXED) return false;
      if (m.s[nd.a] >= 0) return m.s[nd.a] == r;
      m.s[nd.a] = r;
      return true;
    case PK_OUT: return r == P.out_reg[m.out[nd.a]];
    case PK_UN: return s.kind == kUnary && s.mode == M_OP && s.op == nd.op && pat_match<PAT>(P, nd.a, s.a, m);
    default:
      return s.kind == kBinary && s.mode == M_OP && s.op == nd.op && pat_match<PAT>(P, nd.a, s.a, m) &&
             pat_match<PAT>(P, nd.b, s.b, m);
  }
}

// Match the program's outputs against PAT's (each pattern output against each program output not yet taken).
template <class PAT>
bool pat_match_outs(const Prog& P, int j, PatMatch& m) {
  if (j == PAT::nout) return true;
  for (int k = 0; k < P.nout; k++) {
    bool taken = false;
    for (int q = 0; q < j; q++) taken = taken || m.out[q] == k;
    if (taken) continue;
    PatMatch t = m;
    t.out[j] = k;
    if (pat_match<PAT>(P, PAT::roots[j], P.out_reg[k], t) && pat_match_outs<PAT>(P, j + 1, t)) {
      m = t;
      return true;
    }
  }
  return false;
}

// Run the program through PAT's compiled loop if it matches and its outputs overlap no input other than at
// the same position and no other output; false (nothing written) otherwise.
template <class T, class PAT>
bool try_pattern(const Prog& P, const Views& in, const T* fixed, i64 n) {
  static_assert(PAT::nx <= kPatMaxVars && PAT::ns <= kPatMaxVars && PAT::nout <= kPatMaxOuts,
                "a pattern's variables and outputs fit PatMatch and PatArgs");
  if (P.nout != PAT::nout) return false;
  PatMatch m;
  for (int k = 0; k < kPatMaxVars; k++) m.x[k] = m.s[k] = -1;
  for (int k = 0; k < kPatMaxOuts; k++) m.out[k] = -1;
  if (!pat_match_outs<PAT>(P, 0, m)) return false;
  PatArgs<T> A;
  for (int k = 0; k < PAT::nx; k++) {
    if (m.x[k] < 0) return false;
    const View& v = in.v[m.x[k]];
    A.x[k] = static_cast<const T*>(v.data) + v.offset;
  }
  for (int k = 0; k < PAT::ns; k++) {
    if (m.s[k] < 0) return false;
    A.s[k] = fixed[m.s[k]];
  }
  for (int j = 0; j < PAT::nout; j++) A.o[j] = static_cast<T*>(P.out_data[m.out[j]]);
  // [p, p + n) of two streams: the same, or disjoint
  auto apart = [n](const T* a, const T* b) { return a == b || a + n <= b || b + n <= a; };
  for (int j = 0; j < PAT::nout; j++) {
    for (int k = 0; k < PAT::nx; k++)
      if (!apart(A.o[j], A.x[k])) return false;
    for (int q = 0; q < j; q++)
      if (A.o[j] == A.o[q] || !apart(A.o[j], A.o[q])) return false;
  }
  pat_run<T, PAT>(A, n);
  return true;
}

// A purely elementwise program whose registers are inputs read flat, fixed values and ops: one of the
// compiled patterns, run (true), or not.
template <class T>
bool run_compiled(const Prog& P, const Views& in, const T* fixed, i64 n) {
  if (P.blocked || P.red_op >= 0) return false;
  return try_pattern<T, PatAdam>(P, in, fixed, n) || try_pattern<T, PatAdamEps>(P, in, fixed, n) ||
         try_pattern<T, PatAdamLib>(P, in, fixed, n) || try_pattern<T, PatAdamWLib>(P, in, fixed, n) ||
         try_pattern<T, PatMomentum>(P, in, fixed, n);
}

template <class T>
Err fused_typed(const View& consts, const Views& in, i64 n, Prog& P, T* red_out) {
  // fixed values, then (as ints) last_use and the free list of plan()
  T* fixed = static_cast<T*>(P.fixed);
  plan<T>(P, consts, in, fixed);
  if (run_compiled<T>(P, in, fixed, n)) return nullptr;
  constexpr i64 tile = tile_of<T>();
  // blocks of br x bc elements, row-major over the output
  constexpr i64 bc = kBlockCols, br = block_rows<T>();
  const i64 nbr = (P.A + br - 1) / br, nbc = (P.B + bc - 1) / bc;
  const i64 ntiles = P.blocked ? nbr * nbc : (n + tile - 1) / tile;
  const i64 grain = elem_grain(n, imax<i64>(kGrainCostly, kGrainCheap / imax(P.nops, 1)));
  const size_t tiles_bytes = sizeof(T) * (size_t)(P.nbuf * tile);
  if (P.red_op >= 0) {
    bool ok;
    switch (P.red_op) {
      case R_SUM: ok = reduce_tiles<T, R_SUM>(P, in, fixed, red_out, n, tiles_bytes); break;
      case R_MAX: ok = reduce_tiles<T, R_MAX>(P, in, fixed, red_out, n, tiles_bytes); break;
      default: ok = reduce_tiles<T, R_MIN>(P, in, fixed, red_out, n, tiles_bytes); break;
    }
    return ok ? nullptr : "out of memory";
  }
  const size_t panel_bytes = sizeof(T) * (size_t)(P.npanel * br * bc);
  par_for(ntiles, imax<i64>(1, grain / (P.blocked ? br * bc : tile)), [&](i64 b, i64 e, int tid) {
    char* mem = static_cast<char*>(scratch(tid, 0, tiles_bytes + panel_bytes + sizeof(T*) * P.ninstr));
    if (!mem) return;  // reported by scratch_failed()
    T* tiles = reinterpret_cast<T*>(mem);
    T* pan = reinterpret_cast<T*>(mem + tiles_bytes);
    const T** cur = reinterpret_cast<const T**>(mem + tiles_bytes + panel_bytes);
    for (int i = 0; i < P.ninstr; i++) cur[i] = &fixed[i];
    if (P.blocked) {
      for (i64 t = b; t < e; t++) {
        const i64 i0 = (t / nbc) * br, j0 = (t % nbc) * bc;
        const i64 ni0 = t + 1 < e ? ((t + 1) / nbc) * br : -1, nj0 = ((t + 1) % nbc) * bc;
        run_block<T>(P, in, i0, j0, imin(br, P.A - i0), imin(bc, P.B - j0), tiles, cur, pan, ni0, nj0,
                     imin(bc, P.B - nj0));
      }
      return;
    }
    if (b + 1 < e) prefetch_tile<T>(P, in, (b + 1) * tile, tile);  // (then each tile prefetches two ahead)
    for (i64 t = b; t < e; t++)
      run_tile<T>(P, in, t * tile, imin(tile, n - t * tile), tiles, cur, t + 2 < e ? (t + 2) * tile : -1);
  });
  return nullptr;
}

// ---------------------------------------------------------------------------------------------------------
// GEMM epilogue fusion: the program runs over each block of the product as the GEMM finishes it (dot_ep.h),
// one row segment at a time through run_tile, with the product (stored in `out`) as input 0.
template <class T>
struct RowsEpilogue final : DotEpilogue {
  const Prog* P;
  const Views* in;
  T* fixed;
  i64 M, N;
  size_t tiles_bytes;
  void rows(i64 mat, i64 i0, i64 i1, i64 j0, i64 j1, int tid) const override {
    constexpr i64 tile = tile_of<T>();
    char* mem = static_cast<char*>(scratch(tid, 5, tiles_bytes + sizeof(T*) * P->ninstr));
    if (!mem) return;  // reported by scratch_failed()
    T* tiles = reinterpret_cast<T*>(mem);
    const T** cur = reinterpret_cast<const T**>(mem + tiles_bytes);
    for (int i = 0; i < P->ninstr; i++) cur[i] = &fixed[i];
    const i64 nr = i1 - i0;
    if (j0 == 0 && j1 == N) {
      // Whole rows: one contiguous run of the product, taken a tile at a time (a narrow product, e.g. an MLP's
      // 10 logits, would otherwise run the program once per row of a few elements).
      const i64 e0 = (mat * M + i0) * N, e1 = (mat * M + i1) * N, ahead = e1 - e0;
      for (i64 t = e0; t < e1; t += tile) {
        const i64 len = imin(tile, e1 - t);
        if (i1 < M) prefetch_l2(t + ahead, imin(len, (mat * M + M) * N - (t + ahead)));
        run_tile<T>(*P, *in, t, len, tiles, cur);
      }
      return;
    }
    for (i64 i = i0; i < i1; i++) {
      const i64 base = (mat * M + i) * N;
      // The same row of the block below, which the GEMM finishes next: its operands (not the product) start
      // coming into L2 now and arrive while the GEMM computes that block, so the chain then reads them from
      // L2 instead of waiting on memory (an optimizer update's parameter and moments: measured 2x slower than
      // one flat pass without this).
      if (i + nr < M) prefetch_l2(base + nr * N + j0, j1 - j0);
      for (i64 j = j0; j < j1; j += tile) run_tile<T>(*P, *in, base + j, imin(tile, j1 - j), tiles, cur);
    }
  }
  // Elements [e0, e0 + len) (the product's order) of the flat inputs after the product, and of the outputs after
  // the first (which holds the product), into L2.
  CR_INLINE void prefetch_l2(i64 e0, i64 len) const {
    const i64 bytes = len * (i64)sizeof(T);
    for (int k = 1; k < P->nin; k++) {
      if (P->input_mode[k] != M_FLAT) continue;
      const char* p = reinterpret_cast<const char*>(static_cast<const T*>(in->v[k].data) + in->v[k].offset + e0);
      for (i64 b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 0, 2);
    }
    for (int j = 1; j < P->nout; j++) {
      if (!P->out_fetch[j]) continue;
      const char* p = reinterpret_cast<const char*>(static_cast<const T*>(P->out_data[j]) + e0);
      for (i64 b = 0; b < bytes; b += 64) __builtin_prefetch(p + b, 1, 2);
    }
  }
};

template <class T>
Err dot_fused_typed(const View& a, const View& b, const View& consts, const Out& out, const Views& in, Prog& P,
                    i64 M, i64 N) {
  T* fixed = static_cast<T*>(P.fixed);
  plan<T>(P, consts, in, fixed);
  RowsEpilogue<T> ep;
  ep.P = &P, ep.in = &in, ep.fixed = fixed, ep.M = M, ep.N = N;
  ep.tiles_bytes = sizeof(T) * (size_t)(P.nbuf * tile_of<T>());
  return dot_ep(a, b, out, &ep);
}

}  // namespace

Err dot_fused(const View& a, const View& b, const View& code, const View& consts, const Out& out, const Views& in) {
  if (out.dtype != F32 && out.dtype != F64) return "dotFused: expected float32 or float64 operands";
  const int nd = a.ndim;
  if (nd < 2 || b.ndim != nd) return "dotFused: operands must have equal rank >= 2";
  if (a.dtype != out.dtype || b.dtype != out.dtype) return "dotFused: a, b and out must share a dtype";
  if (in.n + 1 > kMaxListViews) return "dotFused: too many views";
  // the product's shape, and a view of it in `out` (input 0 of the program)
  View* vs = static_cast<View*>(std::malloc(sizeof(View) * (size_t)(in.n + 1)));
  if (!vs) return "out of memory";
  View& prod = vs[0];
  prod.data = out.data;
  prod.dtype = out.dtype;
  prod.ndim = nd;
  prod.offset = 0;
  for (int d = 0; d < nd - 1; d++) prod.shape[d] = a.shape[d];
  prod.shape[nd - 1] = b.shape[nd - 1];
  contiguous_strides(nd, prod.shape, prod.strides);
  for (int k = 0; k < in.n; k++) vs[k + 1] = in.v[k];
  Views all{in.n + 1, vs};
  Prog P;
  Err e = decode(nd, prod.shape, code, consts, out, all, P, true);
  if (!e && P.red_op >= 0) e = "dotFused: a program with a reduction cannot be an epilogue";
  // the product is not there yet when plan() reads fixed values: a one-element product is read per tile
  if (!e && P.input_mode[0] == M_FIXED) P.input_mode[0] = M_FLAT;
  if (!e) {
    const i64 M = prod.shape[nd - 2], N = prod.shape[nd - 1];
    e = out.dtype == F32 ? dot_fused_typed<float>(a, b, consts, out, all, P, M, N)
                         : dot_fused_typed<double>(a, b, consts, out, all, P, M, N);
  }
  std::free(vs);
  return e;
}

Err fused(int nd, const int64_t* shape, const View& code, const View& consts, const Out& out, const Views& in) {
  if (out.dtype != F32 && out.dtype != F64) return "expected a float32 or float64 output";
  Prog P;
  if (Err e = decode(nd, shape, code, consts, out, in, P)) return e;
  const bool red = P.red_op >= 0;
  const i64 n = red ? shape_size(P.dnd, P.dshape) : shape_size(nd, shape);
  if (n == 0 && !red) return nullptr;
  if (n == 0) {  // the reduction of nothing: sum 0 (max / min of an empty axis never reach a kernel)
    const i64 k = shape_size(nd, shape);
    if (out.dtype == F32)
      for (i64 i = 0; i < k; i++) static_cast<float*>(out.data)[i] = 0.f;
    else
      for (i64 i = 0; i < k; i++) static_cast<double*>(out.data)[i] = 0.0;
    return nullptr;
  }
  if (out.dtype == F32) return fused_typed<float>(consts, in, n, P, static_cast<float*>(out.data));
  return fused_typed<double>(consts, in, n, P, static_cast<double*>(out.data));
}

}  // namespace CR_ISA_NS
}  // namespace cr
