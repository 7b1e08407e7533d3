// Thread pool and scratch memory (see pool.h).
//
// Protocol: the caller publishes a job (fn, ctx, n, grain), resets the shared chunk counter and bumps a
// generation number. Each worker notices the new generation (it spins briefly after finishing a job, then
// sleeps on a condition variable), takes chunks with fetch_add until the range is exhausted, and reports done.
// The caller works on chunks too and then waits until all workers reported, so a job never outlives pool_run.
// The pool object is intentionally leaked: joinable std::threads in a static destructor would abort at exit.
#include "pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CR_PAUSE() _mm_pause()
#else
#define CR_PAUSE() ((void)0)
#endif

namespace cr {
namespace {

thread_local int t_tid = 0;
thread_local bool t_in_parallel = false;

struct Pool {
  int nthreads = 1;  // including the caller
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<uint64_t> gen{0};
  std::atomic<int> done{0};
  std::atomic<int> sleeping{0};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> next{0};
  // The current job (written by the caller before bumping gen, read by workers after seeing it).
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  int64_t n = 0;
  int64_t grain = 1;
  // Serialises pool_run between JavaScript threads (each worker_thread loads the addon; the pool is global).
  std::mutex run_mu;

  void work(int tid) {
    for (;;) {
      int64_t b = next.fetch_add(grain, std::memory_order_relaxed);
      if (b >= n) break;
      int64_t e = b + grain < n ? b + grain : n;
      fn(ctx, b, e, tid);
    }
  }

  void worker_main(int tid) {
    t_tid = tid;
    t_in_parallel = true;
    uint64_t seen = gen.load(std::memory_order_acquire);
    for (;;) {
      // Spin for a short while: consecutive kernel calls then start without a futex wake-up.
      auto start = std::chrono::steady_clock::now();
      bool got = false;
      for (int spins = 0;; spins++) {
        if (gen.load(std::memory_order_acquire) != seen) {
          got = true;
          break;
        }
        CR_PAUSE();
        if ((spins & 255) == 255 &&
            std::chrono::steady_clock::now() - start > std::chrono::microseconds(200))
          break;
      }
      if (!got) {
        std::unique_lock<std::mutex> lk(mu);
        sleeping.fetch_add(1);
        cv.wait(lk, [&] { return gen.load() != seen || stop.load(); });
        sleeping.fetch_sub(1);
      }
      if (stop.load()) return;
      seen = gen.load(std::memory_order_acquire);
      work(tid);
      done.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void start(int n_threads) {
    nthreads = n_threads;
    stop.store(false);
    for (int t = 1; t < nthreads; t++) workers.emplace_back([this, t] { worker_main(t); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop.store(true);
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
    nthreads = 1;
  }
};

Pool* g_pool = nullptr;

int hardware_threads() {
  unsigned h = std::thread::hardware_concurrency();
  return h == 0 ? 1 : (int)h;
}

Pool& pool() {
  if (!g_pool) {
    g_pool = new Pool();
    g_pool->start(hardware_threads());
  }
  return *g_pool;
}

// Scratch buffers: kSlots per thread, grown on demand (never shrunk below what was asked last).
constexpr int kSlots = 8;
constexpr int kMaxThreads = 256;
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
  std::unique_lock<std::mutex> run_lock(p.run_mu, std::try_to_lock);
  if (!run_lock.owns_lock()) {  // another JS thread is using the pool: run serially
    fn(ctx, 0, n, 0);
    return;
  }
  p.fn = fn;
  p.ctx = ctx;
  p.n = n;
  p.grain = grain;
  p.next.store(0, std::memory_order_relaxed);
  p.done.store(0, std::memory_order_relaxed);
  p.gen.fetch_add(1);  // seq_cst: pairs with the sleeping counter below (no lost wake-up)
  if (p.sleeping.load() > 0) {
    { std::lock_guard<std::mutex> lk(p.mu); }
    p.cv.notify_all();
  }
  t_in_parallel = true;
  p.work(0);
  t_in_parallel = false;
  const int nworkers = p.nthreads - 1;
  while (p.done.load(std::memory_order_acquire) < nworkers) CR_PAUSE();
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

void* scratch(int tid, int slot, size_t bytes) {
  Scratch& s = g_scratch[tid][slot];
  if (bytes == 0) bytes = 64;
  if (s.size < bytes) {
    std::free(s.ptr);
    size_t sz = (bytes + 63) / 64 * 64;
    s.ptr = std::aligned_alloc(64, sz);
    s.size = s.ptr ? sz : 0;
  }
  return s.ptr;
}

}  // namespace cr
