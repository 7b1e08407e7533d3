// Thread pool and scratch memory (see pool.h).
//
// Protocol: the caller publishes a job (fn, ctx, n, grain), resets the shared chunk counter and opens the job.
// Each worker notices the open job (it spins briefly after finishing a job, yielding its CPU now and then, then
// sleeps on a condition variable), takes chunks with fetch_add until the range is exhausted. The caller takes
// chunks too, then closes the job and waits only for the workers that joined it (see Pool::worker_main), so a job never
// outlives pool_run and a slow-to-wake worker never delays it.
// The pool object is intentionally leaked: joinable std::threads in a static destructor would abort at exit.
#include "pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <unistd.h>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define CR_PAUSE() _mm_pause()
#else
#define CR_PAUSE() ((void)0)
#endif

namespace cr {
namespace {

thread_local int t_tid = 0;

// The CPUs the process may run on, in order starting from `first` (the CPU the caller ran on), or an empty list
// when there is only one or the affinity cannot be read (workers are then not pinned).
std::vector<int> cpus_from(int first) {
  std::vector<int> out;
#if defined(__linux__)
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) <= 1) return out;
  if (first < 0 || first >= CPU_SETSIZE) first = 0;
  for (int i = 0; i < CPU_SETSIZE; i++) {
    const int c = (first + i) % CPU_SETSIZE;
    if (CPU_ISSET(c, &allowed)) out.push_back(c);
  }
#else
  (void)first;
#endif
  return out;
}

// Pin thread `th` to CPU `cpu` (no-op off Linux or for cpu < 0).
void pin_thread(std::thread& th, int cpu) {
#if defined(__linux__)
  if (cpu < 0) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  pthread_setaffinity_np(th.native_handle(), sizeof(one), &one);
#else
  (void)th;
  (void)cpu;
#endif
}

// The CPU the calling thread runs on, or -1 where unknown.
int current_cpu() {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -1;
#endif
}
thread_local bool t_in_parallel = false;

// Flush-denormal mode (pool.h): the switch, and whether this worker's MXCSR has FTZ / DAZ set.
std::atomic<bool> g_flush_denormal{false};
thread_local bool t_flushing = false;
constexpr unsigned kFtzDaz = 0x8040;  // MXCSR: FTZ (bit 15) and DAZ (bit 6)
// The sentinel of flush_denormal_enter for "nothing changed" (no MXCSR value has its reserved bit 31 set).
constexpr unsigned kNoRestore = 0x80000000u;

// A worker's MXCSR follows the switch at the start of each job (workers never run JavaScript).
void worker_follow_flush() {
#if defined(__x86_64__) || defined(__i386__)
  const bool on = g_flush_denormal.load(std::memory_order_relaxed);
  if (on == t_flushing) return;
  const unsigned c = _mm_getcsr();
  _mm_setcsr(on ? (c | kFtzDaz) : (c & ~kFtzDaz));
  t_flushing = on;
#endif
}

struct Pool {
  int nthreads = 1;  // including the caller
  std::vector<std::thread> workers;
  // Worker t (1-based) is pinned to worker_cpu[t - 1], the CPUs after the caller's, so that a worker woken by the
  // caller runs beside it rather than queued on its CPU (without pinning, that was often the case on a 2-vCPU VM:
  // small GEMMs 10x slower). The caller (the JavaScript thread) is never pinned, so the scheduler may move it
  // onto a worker's CPU, where both then share one CPU: a 2-thread product runs no faster than 1 thread (seen in
  // a 3,000-call n = 128 loop: the caller on the worker's CPU in 1,361 of 2,000 pool jobs). run() therefore checks
  // where the caller is (sched_getcpu, a few ns) and moves a worker found there to the CPU the caller left. In
  // loops of n = 256 products on 2 threads (2-core Zen 5 VM), 100-call stretches at the 1-thread rate went from
  // 16 of 120 to 4 of 120.
  std::vector<int> worker_cpu;
  int caller_cpu = -1;
  std::mutex mu;
  std::condition_variable cv;
  // (job number << 1) | open. A job is open while its chunks may be taken.
  std::atomic<uint64_t> state{0};
  uint64_t jobs = 0;
  std::atomic<int> active{0};  // workers inside the current job
  std::atomic<int> sleeping{0};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> next{0};
  // The current job (written by the caller before opening it, read by workers after seeing it open).
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  int64_t n = 0;
  int64_t grain = 1;
  // Guards resizing against a running job. (Kernel calls from different JavaScript threads are already
  // serialised as a whole by addon.cc, which also makes the per-thread scratch buffers safe.)
  std::mutex run_mu;

  void work(int tid) {
    for (;;) {
      int64_t b = next.fetch_add(grain, std::memory_order_relaxed);
      if (b >= n) break;
      int64_t e = b + grain < n ? b + grain : n;
      fn(ctx, b, e, tid);
    }
  }

  bool has_new_job(uint64_t last) const {
    uint64_t s = state.load();
    return s != last && (s & 1) != 0;
  }

  // A worker joins an open job by registering in `active` and then re-checking that the job is still the
  // open one. The caller closes the job before waiting for active == 0, so (all operations being seq_cst)
  // a worker either registered before the close, and is waited for, or sees the job closed and leaves
  // without touching it. Late or sleeping workers therefore never delay the caller: it simply does more of
  // the chunks itself.
  void worker_main(int tid, uint64_t last) {
    t_tid = tid;
    t_in_parallel = true;
#if defined(__linux__)
    char name[16];
    std::snprintf(name, sizeof(name), "cr-pool-%d", tid);  // as `top -H` and /proc/<pid>/task/*/comm show it
    pthread_setname_np(pthread_self(), name);
#endif
    for (;;) {
      // Spin for a short while: consecutive kernel calls then start without a futex wake-up.
      auto start = std::chrono::steady_clock::now();
      bool got = false;
      for (int spins = 0;; spins++) {
        if (has_new_job(last) || stop.load(std::memory_order_relaxed)) {
          got = true;
          break;
        }
        CR_PAUSE();
        // After 20 us without a job, give the CPU to any other runnable thread every few microseconds (on a
        // 2-core machine, V8's GC and compiler helpers would otherwise wait for the spin to end or for the
        // scheduler to preempt it). Not sooner: a yield delays noticing a job by a system call (a job 5 us after
        // the last one was joined after ~1.9 us instead of ~0.8 us with a yield every few microseconds).
        if ((spins & 255) == 255) {
          const auto spun = std::chrono::steady_clock::now() - start;
          if (spun > std::chrono::microseconds(100)) break;
          if (spun > std::chrono::microseconds(20)) std::this_thread::yield();
        }
      }
      if (!got) {
        std::unique_lock<std::mutex> lk(mu);
        sleeping.fetch_add(1);
        cv.wait(lk, [&] { return has_new_job(last) || stop.load(); });
        sleeping.fetch_sub(1);
      }
      if (stop.load()) return;
      const uint64_t s = state.load();
      last = s;
      if ((s & 1) == 0) continue;
      active.fetch_add(1);
      worker_follow_flush();
      if (state.load() == s) work(tid);
      active.fetch_sub(1);
    }
  }

  void start(int n_threads) {
    nthreads = n_threads;
    stop.store(false);
    const uint64_t s = state.load();
    caller_cpu = current_cpu();
    const std::vector<int> cpus = cpus_from(caller_cpu);
    worker_cpu.clear();
    for (int t = 1; t < nthreads; t++) {
      workers.emplace_back([this, t, s] { worker_main(t, s); });
      const int cpu = cpus.empty() ? -1 : cpus[t % cpus.size()];
      worker_cpu.push_back(cpu);
      pin_thread(workers.back(), cpu);
    }
    if (cpus.empty()) caller_cpu = -1;
  }

  // The caller moved from caller_cpu to `cpu`: a worker pinned to `cpu` moves to the CPU the caller left.
  void follow_caller(int cpu) {
    for (size_t i = 0; i < workers.size(); i++)
      if (worker_cpu[i] == cpu) {
        worker_cpu[i] = caller_cpu;
        pin_thread(workers[i], caller_cpu);
      }
    caller_cpu = cpu;
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop.store(true);
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
    worker_cpu.clear();
    nthreads = 1;
  }

  void run(int64_t n_, int64_t grain_, TaskFn fn_, void* ctx_) {
    if (caller_cpu >= 0) {
      const int cpu = current_cpu();
      if (cpu >= 0 && cpu != caller_cpu) follow_caller(cpu);
    }
    fn = fn_;
    ctx = ctx_;
    n = n_;
    grain = grain_;
    next.store(0, std::memory_order_relaxed);
    const uint64_t open = (++jobs << 1) | 1;
    state.store(open);  // seq_cst: pairs with `sleeping` (no lost wake-up) and with `active` (see above)
    if (sleeping.load() > 0) {
      { std::lock_guard<std::mutex> lk(mu); }
      cv.notify_all();
    }
    t_in_parallel = true;
    work(0);
    t_in_parallel = false;
    state.store(open & ~uint64_t(1));
    for (int spins = 0; active.load() != 0; spins++) {
      CR_PAUSE();
      if ((spins & 1023) == 1023) std::this_thread::yield();  // a worker may share our CPU
    }
  }
};

Pool* g_pool = nullptr;

// Scratch buffers: kSlots per thread, grown on demand (never shrunk below what was asked last).
constexpr int kSlots = 8;
// The most threads the pool runs (the scratch table's size).
constexpr int kMaxThreads = 256;

int hardware_threads() {
  unsigned h = std::thread::hardware_concurrency();
  if (h > (unsigned)kMaxThreads) h = kMaxThreads;
  return h == 0 ? 1 : (int)h;
}

// The pool's initial size: CHAINRULE_NUM_THREADS if set (a positive decimal integer, clamped to kMaxThreads),
// else the hardware concurrency. A malformed value is not silently replaced: a warning on stderr names the
// variable, the value and what was expected, and the default is used. Read once per process, when the first
// kernel call (from any JavaScript thread) starts the pool.
int initial_threads() {
  const int hw = hardware_threads();
  const char* s = std::getenv("CHAINRULE_NUM_THREADS");
  if (!s || !*s) return hw;
  const char* p = s;
  while (*p == ' ' || *p == '\t') p++;
  long long v = 0;
  bool digits = false, ok = true;
  for (; *p >= '0' && *p <= '9'; p++) {
    digits = true;
    if (v < 1000000) v = v * 10 + (*p - '0');
  }
  while (*p == ' ' || *p == '\t') p++;
  if (!digits || *p != 0 || v < 1) ok = false;
  if (!ok) {
    std::fprintf(stderr,
                 "chainrule: ignoring CHAINRULE_NUM_THREADS=\"%s\": expected a positive integer (1 to %d); "
                 "using %d threads\n",
                 s, kMaxThreads, hw);
    return hw;
  }
  if (v > kMaxThreads) {
    std::fprintf(stderr, "chainrule: CHAINRULE_NUM_THREADS=%s exceeds the maximum of %d threads; using %d\n", s,
                 kMaxThreads, kMaxThreads);
    return kMaxThreads;
  }
  return (int)v;
}

Pool& pool() {
  if (!g_pool) {
    g_pool = new Pool();
    g_pool->start(initial_threads());
  }
  return *g_pool;
}

struct Scratch {
  void* ptr = nullptr;
  size_t size = 0;
};
Scratch g_scratch[kMaxThreads][kSlots];

}  // namespace

void pool_run(int64_t n, int64_t grain, TaskFn fn, void* ctx) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  Pool& p = pool();
  if (p.nthreads == 1 || n <= grain || t_in_parallel) {
    fn(ctx, 0, n, t_tid);
    return;
  }
  // Uncontended: addon.cc lets one kernel call at a time run. (Running serially here when another JavaScript
  // thread held the pool, as this once did, shared that thread's scratch buffers, id 0, with it.)
  std::lock_guard<std::mutex> run_lock(p.run_mu);
  p.run(n, grain, fn, ctx);
}

int pool_threads() { return pool().nthreads; }

int pool_tid() { return t_tid; }

void pool_set_threads(int n) {
  if (n <= 0) n = hardware_threads();
  if (n > kMaxThreads) n = kMaxThreads;
  Pool& p = pool();
  if (n == p.nthreads) return;
  std::lock_guard<std::mutex> run_lock(p.run_mu);
  p.shutdown();
  p.start(n);
}

// AMX detection (see pool.h). Baseline code: cpuid, xgetbv and a system call, no AMX instruction.
// (Only where the compiler has the AMX headers: half.cc builds its AMX path under the same condition.)
static bool amx_detect() {
#if defined(__linux__) && defined(__x86_64__) && defined(__has_include)
#if __has_include(<amxtileintrin.h>) && __has_include(<amxbf16intrin.h>)
#define CR_AMX_DETECT 1
#endif
#endif
#if defined(CR_AMX_DETECT)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(1, 0, a, b, c, d);
  if (!(c & (1u << 27))) return false;  // OSXSAVE: xgetbv is usable
  __cpuid_count(7, 0, a, b, c, d);
  const bool tile = (d >> 24) & 1, bf16 = (d >> 22) & 1;
  if (!tile || !bf16) return false;
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if (((lo >> 17) & 3u) != 3u) return false;  // XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA)
  // Linux (5.16+) hands out the 8 KiB tile data state only on request; without it the first tile instruction
  // raises SIGILL. The permission is per process: every thread, including pool workers started later, has it.
  const long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

static bool amx_has() {
  static const bool has = amx_detect();
  return has;
}

static std::atomic<int> g_amx_on{-1};  // -1: not yet read from CHAINRULE_NATIVE_AMX

bool amx_available() { return amx_has(); }

bool amx_enabled() {
  int on = g_amx_on.load(std::memory_order_relaxed);
  if (on < 0) {
    const char* env = std::getenv("CHAINRULE_NATIVE_AMX");
    int want = env != nullptr && env[0] == '0' ? 0 : 1;
    if (g_amx_on.compare_exchange_strong(on, want)) on = want;
  }
  return on == 1 && amx_has();
}

bool flush_denormal_set(bool on) {
#if defined(__x86_64__) || defined(__i386__)
  g_flush_denormal.store(on);
  return true;
#else
  return !on;
#endif
}

bool flush_denormal() { return g_flush_denormal.load(); }

unsigned flush_denormal_enter() {
#if defined(__x86_64__) || defined(__i386__)
  if (!g_flush_denormal.load(std::memory_order_relaxed)) return kNoRestore;
  const unsigned c = _mm_getcsr();
  _mm_setcsr(c | kFtzDaz);
  return c;
#else
  return kNoRestore;
#endif
}

void flush_denormal_leave(unsigned saved) {
#if defined(__x86_64__) || defined(__i386__)
  if (saved != kNoRestore) _mm_setcsr(saved);
#else
  (void)saved;
#endif
}

bool amx_set_enabled(bool on) {
  g_amx_on.store(on ? 1 : 0);
  return amx_enabled();
}

int64_t cache_size(int level) {
  static const int64_t sizes[3] = {
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
      sysconf(_SC_LEVEL1_DCACHE_SIZE), sysconf(_SC_LEVEL2_CACHE_SIZE), sysconf(_SC_LEVEL3_CACHE_SIZE)
#else
      0, 0, 0
#endif
  };
  if (level < 1 || level > 3) return 0;
  const int64_t s = sizes[level - 1];
  return s > 0 ? s : 0;
}

static std::atomic<bool> g_scratch_failed{false};

void* scratch(int tid, int slot, size_t bytes) {
  Scratch& s = g_scratch[tid][slot];
  if (bytes == 0) bytes = 64;
  if (s.size < bytes) {
    std::free(s.ptr);
    size_t sz = (bytes + 63) / 64 * 64;
    s.ptr = std::aligned_alloc(64, sz);
    s.size = s.ptr ? sz : 0;
    if (!s.ptr) g_scratch_failed.store(true);
  }
  return s.ptr;
}

// The failure flags are set by any pool thread during a kernel call and read by the caller after it (pool_run
// returning orders the workers' writes before the caller's reads); calls are serialised, so relaxed loads and
// stores suffice and the common path (no failure) costs two plain loads, no locked instruction.
bool scratch_failed() {
  if (!g_scratch_failed.load(std::memory_order_relaxed)) return false;
  g_scratch_failed.store(false, std::memory_order_relaxed);
  return true;
}

static std::atomic<bool> g_bad_index{false};
static std::atomic<int64_t> g_bad_value{0};

void note_bad_index(int64_t v) {
  if (!g_bad_index.load(std::memory_order_relaxed)) {
    g_bad_value.store(v, std::memory_order_relaxed);
    g_bad_index.store(true, std::memory_order_relaxed);
  }
}

bool take_bad_index(int64_t* v) {
  if (!g_bad_index.load(std::memory_order_relaxed)) return false;
  *v = g_bad_value.load(std::memory_order_relaxed);
  g_bad_index.store(false, std::memory_order_relaxed);
  return true;
}

const char* err_fmt(const char* fmt, ...) {
  static thread_local char buf[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

}  // namespace cr
