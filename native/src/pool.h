// The thread pool of the native backend: persistent workers that split a range of work items between them
// with an atomic counter (dynamic scheduling), plus per-thread scratch buffers for packing and im2col.
//
// Compiled once, in the baseline translation unit. Kernels of every ISA call it through these plain
// (non-inline) functions, which keeps ISA-specific code out of shared inline definitions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cr {

// fn(ctx, begin, end, tid) processes items [begin, end); tid is in [0, threads()).
using TaskFn = void (*)(void* ctx, int64_t begin, int64_t end, int tid);

// Run fn over [0, n) in chunks of `grain` items on all threads (the caller is thread 0) and return when every
// chunk is done. Runs inline on the calling thread when the pool has one thread, when n <= grain, or when the
// caller is already inside a parallel region (no nesting).
void pool_run(int64_t n, int64_t grain, TaskFn fn, void* ctx);

// Number of threads a parallel region uses (including the caller).
int pool_threads();

// Resize the pool to n threads (n >= 1); n = 0 means the hardware concurrency.
void pool_set_threads(int n);

// The id of the calling thread inside a parallel region (0 outside one).
int pool_tid();

// A 64-byte aligned buffer of at least `bytes` bytes owned by thread `tid`, one per `slot` (0..7). It stays
// valid until the next call with the same (tid, slot). Contents are unspecified. Returns nullptr if memory
// is exhausted, and remembers the failure for scratch_failed(). Every JavaScript thread calling a kernel is
// tid 0, so the buffers are only safe because addon.cc runs one kernel call at a time (g_call_mu).
void* scratch(int tid, int slot, size_t bytes);

// Size in bytes of the level-`level` data cache (1 = L1d, 2 = L2, 3 = L3) of the CPU the process runs on, as the
// C library reports it (cpuid on x86-64), or 0 when unknown. Read once; the GEMM chooses its blocking from it.
int64_t cache_size(int level);

// Intel AMX (tile registers with bfloat16 dot products) for the bfloat16 GEMM. amx_available(): the CPU reports
// AMX-TILE and AMX-BF16 (cpuid leaf 7), the OS enables the tile state in XCR0, and Linux granted this process
// the tile data (arch_prctl ARCH_REQ_XCOMP_PERM, asked once per process, at the first call); false anywhere
// else. amx_enabled(): available and not switched off, by CHAINRULE_NATIVE_AMX=0 at the first call or by
// amx_set_enabled(false) (tests run both paths). Kernels run AMX instructions only when amx_enabled() is true.
bool amx_available();
bool amx_enabled();
// Switch AMX on or off (for tests and A/B measurements); returns amx_enabled() afterwards.
bool amx_set_enabled(bool on);

// Flush-denormal mode (PyTorch's torch.set_flush_denormal): while on, every kernel runs with subnormal inputs read
// as zero and subnormal results flushed to zero (DAZ and FTZ in MXCSR), on the calling thread for the duration of
// the call (addon.cc: the JavaScript thread's own mode is restored after, since V8's arithmetic shares it) and on
// the pool's workers from their next job on. Off by default (IEEE subnormals). x86-64 only: elsewhere
// flush_denormal_set returns false and nothing changes.
bool flush_denormal_set(bool on);
bool flush_denormal();
// Enter / leave the mode on the calling thread around one kernel call: enter returns the state to restore.
unsigned flush_denormal_enter();
void flush_denormal_leave(unsigned saved);
// Whether a scratch allocation failed since the last call (the kernel's result is then invalid and the
// N-API layer throws "out of memory"); clears the flag.
bool scratch_failed();

// Bad indices (gather / scatterAdd): a kernel that meets an index outside its bound skips the element and
// records the value here; the N-API layer then throws. take_bad_index returns whether one was recorded since
// the last call (storing it in *v) and clears the record. Kernel calls are serialised (addon.cc), so the
// record belongs to the current call.
void note_bad_index(int64_t v);
bool take_bad_index(int64_t* v);

// printf-style kernel error message in a per-thread buffer, valid until the next call on this thread.
__attribute__((format(printf, 1, 2))) const char* err_fmt(const char* fmt, ...);

}  // namespace cr
