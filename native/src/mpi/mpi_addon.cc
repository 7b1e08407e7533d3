// chainrule's MPI binding: a small N-API addon (chainrule_mpi.node), separate from the kernel addon so that
// the kernel addon never links libmpi. It is built only where mpi.h is found (native/build.mjs) and loaded
// only by `distributed.initProcessGroup` (src/distributed/addon.ts).
//
// Threading. Every MPI call runs on one communication thread, owned by this addon: it calls
// MPI_Init_thread (asking for MPI_THREAD_MULTIPLE, needing only MPI_THREAD_FUNNELED: it is the only thread
// that talks to MPI, apart from MPI_Abort on the fatal paths) and then executes a FIFO queue of operations.
// One queue gives two guarantees at once: operations start on every rank in program order (MPI requires
// collectives on a communicator to be issued in the same order by all ranks; several threads calling MPI
// concurrently would race), and the JavaScript thread never blocks inside MPI. A synchronous collective is
// enqueued and waited for; an asynchronous one returns a Work handle at once (wait(), test(), promise()), so
// the JavaScript thread keeps computing (e.g. the rest of a backward pass) while the collective runs.
//
// Memory. Collectives read and write the typed arrays' memory in place, at an element offset and count the
// caller gives; both are checked here against the array's length, dtypes are read from the arrays themselves
// (never from the caller), and every size relation between arrays (allGather, reduceScatter) is checked. An
// asynchronous operation holds strong references to its arrays until it has completed and been waited for
// (or its handle is collected, which waits for it first), so the garbage collector cannot free memory the
// communication thread is using.
#define NAPI_VERSION 8
// the C API only: no MPI C++ bindings (deprecated, and a second library to link)
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <dlfcn.h>
#include <mpi.h>
#include <node_api.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace {

enum Kind { kAllReduce, kBroadcast, kAllGather, kReduceScatter, kSend, kRecv, kBarrier, kStop };
const char* const kKindNames[] = {"allReduce", "broadcast", "allGather", "reduceScatter",
                                  "send",      "recv",      "barrier",   "stop"};

enum Red { kSum = 0, kMean = 1, kMax = 2, kMin = 3 };
const char* const kRedNames[] = {"sum", "mean", "max", "min"};

// How the elements of a buffer are interpreted (the caller may only narrow what the typed array says).
enum Elem { kPlain = 0, kBool = 1, kBFloat16 = 2 };

struct Buf {
  char* ptr = nullptr;
  int64_t count = 0;  // elements
  napi_typedarray_type type = napi_uint8_array;
  int elemSize = 1;
};

struct Op {
  Kind kind = kBarrier;
  int red = kSum;
  int elem = kPlain;
  int peer = 0;  // root of broadcast, destination of send, source of recv
  int tag = 0;
  Buf a, b;  // a: the in-place / send buffer; b: the receive buffer (allGather, reduceScatter)
  // completion
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::string error;  // empty: success
};

struct State {
  std::thread* thread = nullptr;
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Op>> queue;
  bool started = false, ready = false, finalized = false;
  std::string initError;
  int rank = 0, size = 1, provided = 0;
  double timeoutMs = 0;  // 0: wait forever
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Datatype bf16Type = MPI_DATATYPE_NULL;
  MPI_Op bf16Sum = MPI_OP_NULL, bf16Max = MPI_OP_NULL, bf16Min = MPI_OP_NULL;
  napi_ref workCtor = nullptr;
};
// Never destroyed: the communication thread may still wait on its members while the process exits.
State& g = *new State();

// ---- element types --------------------------------------------------------------------------------------------

int elemSize(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:
      return 8;
  }
}

const char* typeName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
  }
  return "TypedArray";
}

MPI_Datatype mpiType(const Buf& b, int elem) {
  if (elem == kBFloat16) return g.bf16Type;
  switch (b.type) {
    case napi_int8_array: return MPI_INT8_T;
    case napi_uint8_array:
    case napi_uint8_clamped_array: return MPI_UINT8_T;
    case napi_int16_array: return MPI_INT16_T;
    case napi_uint16_array: return MPI_UINT16_T;
    case napi_int32_array: return MPI_INT32_T;
    case napi_uint32_array: return MPI_UINT32_T;
    case napi_float32_array: return MPI_FLOAT;
    case napi_float64_array: return MPI_DOUBLE;
    case napi_bigint64_array: return MPI_INT64_T;
    case napi_biguint64_array: return MPI_UINT64_T;
  }
  return MPI_BYTE;
}

bool isFloatType(napi_typedarray_type t, int elem) {
  return elem == kBFloat16 || t == napi_float32_array || t == napi_float64_array;
}

MPI_Op mpiOp(int red, int elem) {
  if (elem == kBool) return red == kMin ? MPI_LAND : MPI_LOR;  // sum and max of booleans: or; min: and
  if (elem == kBFloat16) return red == kMax ? g.bf16Max : red == kMin ? g.bf16Min : g.bf16Sum;
  return red == kMax ? MPI_MAX : red == kMin ? MPI_MIN : MPI_SUM;
}

// bfloat16: the high half of a float32; reductions compute in float32 and round to nearest even.
inline float bf16ToFloat(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t floatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN (quiet)
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
template <int R>
void bf16Reduce(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; i++) {
    float x = bf16ToFloat(a[i]), y = bf16ToFloat(b[i]), r;
    if (R == kMax) r = (x > y || x != x) ? x : y;
    else if (R == kMin) r = (x < y || x != x) ? x : y;
    else r = x + y;
    b[i] = floatToBf16(r);
  }
}

// ---- the communication thread --------------------------------------------------------------------------------

std::string mpiError(const char* what, int code) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, msg, &len);
  return std::string(what) + " failed: " + std::string(msg, len);
}

// Counts above INT_MAX are split into chunks (MPI counts are int).
const int64_t kChunk = int64_t(1) << 30;

void scaleMean(Buf& b, int elem, int64_t n) {
  if (n == 0) return;
  if (elem == kBFloat16) {
    uint16_t* p = reinterpret_cast<uint16_t*>(b.ptr);
    for (int64_t i = 0; i < n; i++) p[i] = floatToBf16(bf16ToFloat(p[i]) / float(g.size));
  } else if (b.type == napi_float32_array) {
    float* p = reinterpret_cast<float*>(b.ptr);
    float s = float(g.size);
    for (int64_t i = 0; i < n; i++) p[i] /= s;
  } else {
    double* p = reinterpret_cast<double*>(b.ptr);
    double s = double(g.size);
    for (int64_t i = 0; i < n; i++) p[i] /= s;
  }
}

std::string run(Op& op) {
  int rc = MPI_SUCCESS;
  MPI_Datatype dt = mpiType(op.a, op.elem);
  switch (op.kind) {
    case kAllReduce: {
      MPI_Op mop = mpiOp(op.red, op.elem);
      for (int64_t s = 0; s < op.a.count && rc == MPI_SUCCESS; s += kChunk) {
        int n = int(std::min(kChunk, op.a.count - s));
        rc = MPI_Allreduce(MPI_IN_PLACE, op.a.ptr + s * op.a.elemSize, n, dt, mop, g.comm);
      }
      if (rc == MPI_SUCCESS && op.red == kMean) scaleMean(op.a, op.elem, op.a.count);
      break;
    }
    case kBroadcast:
      for (int64_t s = 0; s < op.a.count && rc == MPI_SUCCESS; s += kChunk) {
        int n = int(std::min(kChunk, op.a.count - s));
        rc = MPI_Bcast(op.a.ptr + s * op.a.elemSize, n, dt, op.peer, g.comm);
      }
      break;
    case kAllGather:
      rc = MPI_Allgather(op.a.ptr, int(op.a.count), dt, op.b.ptr, int(op.a.count), dt, g.comm);
      break;
    case kReduceScatter:
      rc = MPI_Reduce_scatter_block(op.a.ptr, op.b.ptr, int(op.b.count), dt, mpiOp(op.red, op.elem), g.comm);
      if (rc == MPI_SUCCESS && op.red == kMean) scaleMean(op.b, op.elem, op.b.count);
      break;
    case kSend:
    case kRecv:
      break;  // started as nonblocking requests by commMain, completed by pollPending
    case kBarrier:
      rc = MPI_Barrier(g.comm);
      break;
    case kStop:
      break;
  }
  if (rc != MPI_SUCCESS) return mpiError(kKindNames[op.kind], rc);
  return std::string();
}

// Point-to-point operations are nonblocking on the communication thread (MPI_Isend / MPI_Irecv), so that a
// send waiting for its matching receive never holds up the operations queued after it (a ring of sends then
// receives would otherwise deadlock once messages are too large for MPI's eager protocol).
struct Pending {
  std::shared_ptr<Op> op;
  MPI_Request req;
};

void complete(Op& op, const std::string& err) {
  {
    std::lock_guard<std::mutex> lk(op.m);
    op.error = err;
    op.done = true;
  }
  op.cv.notify_all();
}

std::string startP2P(Op& op, MPI_Request* req) {
  MPI_Datatype dt = mpiType(op.a, op.elem);
  int rc = op.kind == kSend ? MPI_Isend(op.a.ptr, int(op.a.count), dt, op.peer, op.tag, g.comm, req)
                            : MPI_Irecv(op.a.ptr, int(op.a.count), dt, op.peer, op.tag, g.comm, req);
  return rc == MPI_SUCCESS ? std::string() : mpiError(kKindNames[op.kind], rc);
}

void pollPending(std::deque<Pending>& pending, bool block) {
  for (auto it = pending.begin(); it != pending.end();) {
    int flag = 0;
    MPI_Status st;
    int rc = block ? MPI_Wait(&it->req, &st) : MPI_Test(&it->req, &flag, &st);
    if (rc == MPI_SUCCESS && !block && !flag) {
      ++it;
      continue;
    }
    Op& op = *it->op;
    std::string err;
    if (rc != MPI_SUCCESS) err = mpiError(kKindNames[op.kind], rc);
    else if (op.kind == kRecv) {
      int got = 0;
      MPI_Get_count(&st, mpiType(op.a, op.elem), &got);
      if (got != op.a.count) {
        err = "recv: expected " + std::to_string(op.a.count) + " elements from rank " + std::to_string(op.peer) +
              ", the message had " + std::to_string(got);
      }
    }
    complete(op, err);
    it = pending.erase(it);
  }
}

void commMain() {
  int provided = 0;
  int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  {
    std::lock_guard<std::mutex> lk(g.m);
    if (rc != MPI_SUCCESS) {
      g.initError = "MPI_Init_thread failed with code " + std::to_string(rc);
    } else {
      g.provided = provided;
      MPI_Comm_dup(MPI_COMM_WORLD, &g.comm);
      MPI_Comm_set_errhandler(g.comm, MPI_ERRORS_RETURN);
      MPI_Comm_rank(g.comm, &g.rank);
      MPI_Comm_size(g.comm, &g.size);
      MPI_Type_contiguous(2, MPI_BYTE, &g.bf16Type);
      MPI_Type_commit(&g.bf16Type);
      MPI_Op_create(&bf16Reduce<kSum>, 1, &g.bf16Sum);
      MPI_Op_create(&bf16Reduce<kMax>, 1, &g.bf16Max);
      MPI_Op_create(&bf16Reduce<kMin>, 1, &g.bf16Min);
    }
    g.ready = true;
  }
  g.cv.notify_all();
  if (rc != MPI_SUCCESS) return;
  std::deque<Pending> pending;
  for (;;) {
    std::shared_ptr<Op> op;
    {
      std::unique_lock<std::mutex> lk(g.m);
      if (pending.empty()) g.cv.wait(lk, [] { return !g.queue.empty(); });
      else g.cv.wait_for(lk, std::chrono::microseconds(50), [] { return !g.queue.empty(); });
      if (!g.queue.empty()) {
        op = g.queue.front();
        g.queue.pop_front();
      }
    }
    if (op == nullptr) {
      pollPending(pending, false);
      continue;
    }
    if (op->kind == kSend || op->kind == kRecv) {
      MPI_Request req;
      std::string err = startP2P(*op, &req);
      if (!err.empty()) complete(*op, err);
      else pending.push_back({op, req});
      pollPending(pending, false);
      continue;
    }
    if (op->kind == kStop) pollPending(pending, true);
    std::string err = op->kind == kStop ? std::string() : run(*op);
    if (!pending.empty()) pollPending(pending, false);
    if (op->kind == kStop) {
      MPI_Op_free(&g.bf16Sum);
      MPI_Op_free(&g.bf16Max);
      MPI_Op_free(&g.bf16Min);
      MPI_Type_free(&g.bf16Type);
      MPI_Comm_free(&g.comm);
      MPI_Finalize();
    }
    complete(*op, err);
    if (op->kind == kStop) return;
  }
}

void enqueue(const std::shared_ptr<Op>& op) {
  {
    std::lock_guard<std::mutex> lk(g.m);
    g.queue.push_back(op);
  }
  g.cv.notify_all();
}

// Wait for `op`; false if the timeout elapsed first.
bool waitOp(Op& op, double timeoutMs) {
  std::unique_lock<std::mutex> lk(op.m);
  if (timeoutMs <= 0) {
    op.cv.wait(lk, [&] { return op.done; });
    return true;
  }
  return op.cv.wait_for(lk, std::chrono::duration<double, std::milli>(timeoutMs), [&] { return op.done; });
}

// ---- N-API helpers ----------------------------------------------------------------------------------------------

#define CHECK_NAPI(call)                                   \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      napi_throw_error(env, nullptr, "chainrule_mpi: N-API call failed: " #call); \
      return nullptr;                                      \
    }                                                      \
  } while (0)

napi_value throwError(napi_env env, const std::string& msg, const char* code = nullptr) {
  napi_throw_error(env, code, msg.c_str());
  return nullptr;
}

napi_value throwRange(napi_env env, const std::string& msg) {
  napi_throw_range_error(env, nullptr, msg.c_str());
  return nullptr;
}

// A non-negative integer argument no larger than `max`; false (with a RangeError thrown) otherwise.
bool getCount(napi_env env, napi_value v, const char* op, const char* what, int64_t max, int64_t* out) {
  double d = -1;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d != double(int64_t(d)) ||
      d > double(max)) {
    throwRange(env, std::string(op) + ": " + what + " must be an integer in [0, " + std::to_string(max) +
                        "], got " + (d == d ? std::to_string(d) : "NaN"));
    return false;
  }
  *out = int64_t(d);
  return true;
}

// A typed array argument with [offset, offset + count) elements checked against its length.
bool getBuf(napi_env env, napi_value arr, napi_value off, napi_value cnt, const char* op, const char* which,
            Buf* b) {
  bool is = false;
  if (napi_is_typedarray(env, arr, &is) != napi_ok || !is) {
    throwError(env, std::string(op) + ": " + which + " must be a typed array");
    return false;
  }
  size_t length = 0;
  void* data = nullptr;
  napi_value ab;
  size_t byteOffset = 0;
  if (napi_get_typedarray_info(env, arr, &b->type, &length, &data, &ab, &byteOffset) != napi_ok) {
    throwError(env, std::string(op) + ": cannot read the " + which + " typed array");
    return false;
  }
  int64_t o = 0, n = 0;
  if (!getCount(env, off, op, "the element offset", int64_t(length), &o)) return false;
  if (!getCount(env, cnt, op, "the element count", int64_t(length), &n)) return false;
  if (o + n > int64_t(length)) {
    throwRange(env, std::string(op) + ": " + which + " elements [" + std::to_string(o) + ", " +
                        std::to_string(o + n) + ") are outside its " + typeName(b->type) + " of length " +
                        std::to_string(length));
    return false;
  }
  b->elemSize = elemSize(b->type);
  b->ptr = static_cast<char*>(data) + o * b->elemSize;
  b->count = n;
  return true;
}

bool getInt(napi_env env, napi_value v, const char* op, const char* what, int lo, int hi, int* out) {
  int64_t x = 0;
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != double(int64_t(d)) || d < lo || d > hi) {
    throwRange(env, std::string(op) + ": " + what + " must be an integer in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]");
    return false;
  }
  x = int64_t(d);
  *out = int(x);
  return true;
}

bool requireReady(napi_env env, const char* op) {
  std::lock_guard<std::mutex> lk(g.m);
  if (!g.started || !g.ready || !g.initError.empty()) {
    throwError(env, std::string(op) + ": MPI is not initialised (call init first)");
    return false;
  }
  if (g.finalized) {
    throwError(env, std::string(op) + ": MPI was finalised (destroyProcessGroup); it cannot be used again");
    return false;
  }
  return true;
}

// Validate the element interpretation against the typed array.
bool checkElem(napi_env env, const char* op, const Buf& b, int elem) {
  if (elem == kBool && b.type != napi_uint8_array) {
    throwError(env, std::string(op) + ": bool data must be a Uint8Array, got " + typeName(b.type));
    return false;
  }
  if (elem == kBFloat16 && b.type != napi_uint16_array) {
    throwError(env, std::string(op) + ": bfloat16 data must be a Uint16Array, got " + typeName(b.type));
    return false;
  }
  return true;
}

// ---- the Work handle ------------------------------------------------------------------------------------------------

struct Work {
  std::shared_ptr<Op> op;
  napi_ref refs[2] = {nullptr, nullptr};
  bool released = false;
};

void releaseRefs(napi_env env, Work* w) {
  if (w->released) return;
  w->released = true;
  for (napi_ref& r : w->refs) {
    if (r != nullptr) napi_delete_reference(env, r);
    r = nullptr;
  }
}

void workFinalize(napi_env env, void* data, void*) {
  Work* w = static_cast<Work*>(data);
  // The arrays must outlive the operation: a handle dropped before completion waits for it here.
  waitOp(*w->op, 0);
  releaseRefs(env, w);
  delete w;
}

Work* unwrapWork(napi_env env, napi_callback_info info, napi_value* argv, size_t* argc) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok) return nullptr;
  void* p = nullptr;
  if (napi_unwrap(env, self, &p) != napi_ok || p == nullptr) {
    napi_throw_error(env, nullptr, "Work: not a Work handle");
    return nullptr;
  }
  return static_cast<Work*>(p);
}

// Throw the operation's error (if any) as a JS Error; true if it succeeded.
bool finishOp(napi_env env, Op& op) {
  if (!op.error.empty()) {
    throwError(env, op.error);
    return false;
  }
  return true;
}

napi_value timeoutError(napi_env env, Op& op) {
  return throwError(env,
                    std::string(kKindNames[op.kind]) + " did not complete within " +
                        std::to_string(int64_t(g.timeoutMs)) + " ms",
                    "CHAINRULE_DIST_TIMEOUT");
}

// work.wait(): block until done (bounded by the process group timeout); throws the operation's error.
napi_value WorkWait(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Work* w = unwrapWork(env, info, nullptr, &argc);
  if (w == nullptr) return nullptr;
  if (!waitOp(*w->op, g.timeoutMs)) return timeoutError(env, *w->op);
  releaseRefs(env, w);
  finishOp(env, *w->op);
  return nullptr;
}

// work.test(): whether it has completed (never blocks).
napi_value WorkTest(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Work* w = unwrapWork(env, info, nullptr, &argc);
  if (w == nullptr) return nullptr;
  bool done;
  {
    std::lock_guard<std::mutex> lk(w->op->m);
    done = w->op->done;
  }
  napi_value r;
  napi_get_boolean(env, done, &r);
  return r;
}

struct PromiseWait {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::shared_ptr<Op> op;
  napi_ref self = nullptr;
  bool timedOut = false;
};

void promiseExecute(napi_env, void* data) {
  PromiseWait* p = static_cast<PromiseWait*>(data);
  p->timedOut = !waitOp(*p->op, g.timeoutMs);
}

void promiseComplete(napi_env env, napi_status, void* data) {
  PromiseWait* p = static_cast<PromiseWait*>(data);
  napi_value self;
  void* wp = nullptr;
  if (napi_get_reference_value(env, p->self, &self) == napi_ok && napi_unwrap(env, self, &wp) == napi_ok &&
      !p->timedOut) {
    releaseRefs(env, static_cast<Work*>(wp));
  }
  napi_delete_reference(env, p->self);
  napi_value err = nullptr, msg, code;
  if (p->timedOut) {
    std::string m = std::string(kKindNames[p->op->kind]) + " did not complete within " +
                    std::to_string(int64_t(g.timeoutMs)) + " ms";
    napi_create_string_utf8(env, m.c_str(), m.size(), &msg);
    napi_create_string_utf8(env, "CHAINRULE_DIST_TIMEOUT", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &err);
  } else if (!p->op->error.empty()) {
    napi_create_string_utf8(env, p->op->error.c_str(), p->op->error.size(), &msg);
    napi_create_error(env, nullptr, msg, &err);
  }
  if (err != nullptr) napi_reject_deferred(env, p->deferred, err);
  else {
    napi_value u;
    napi_get_undefined(env, &u);
    napi_resolve_deferred(env, p->deferred, u);
  }
  napi_delete_async_work(env, p->work);
  delete p;
}

// work.promise(): a Promise settled when the operation completes (waits on a libuv pool thread).
napi_value WorkPromise(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  napi_value self;
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, nullptr, &self, nullptr));
  void* wp = nullptr;
  if (napi_unwrap(env, self, &wp) != napi_ok || wp == nullptr) return throwError(env, "Work: not a Work handle");
  PromiseWait* p = new PromiseWait();
  p->op = static_cast<Work*>(wp)->op;
  napi_value promise, name;
  CHECK_NAPI(napi_create_promise(env, &p->deferred, &promise));
  CHECK_NAPI(napi_create_reference(env, self, 1, &p->self));
  CHECK_NAPI(napi_create_string_utf8(env, "chainrule_mpi_wait", NAPI_AUTO_LENGTH, &name));
  CHECK_NAPI(napi_create_async_work(env, nullptr, name, promiseExecute, promiseComplete, p, &p->work));
  CHECK_NAPI(napi_queue_async_work(env, p->work));
  return promise;
}

// Run `op` now (sync: returns undefined after it completed) or return a Work handle (async).
napi_value submit(napi_env env, const std::shared_ptr<Op>& op, bool async, napi_value arrA, napi_value arrB) {
  if (!async) {
    enqueue(op);
    if (!waitOp(*op, g.timeoutMs)) return timeoutError(env, *op);
    finishOp(env, *op);
    return nullptr;
  }
  napi_value ctor, obj;
  CHECK_NAPI(napi_get_reference_value(env, g.workCtor, &ctor));
  CHECK_NAPI(napi_new_instance(env, ctor, 0, nullptr, &obj));
  Work* w = new Work();
  w->op = op;
  if (arrA != nullptr) napi_create_reference(env, arrA, 1, &w->refs[0]);
  if (arrB != nullptr) napi_create_reference(env, arrB, 1, &w->refs[1]);
  if (napi_wrap(env, obj, w, workFinalize, nullptr, nullptr) != napi_ok) {
    releaseRefs(env, w);
    delete w;
    return throwError(env, "chainrule_mpi: cannot create a Work handle");
  }
  enqueue(op);
  return obj;
}

napi_value WorkCtor(napi_env env, napi_callback_info info) {
  napi_value self;
  napi_get_cb_info(env, info, nullptr, nullptr, &self, nullptr);
  return self;
}

// ---- exported functions -----------------------------------------------------------------------------------------

bool getBool(napi_env env, napi_value v) {
  bool b = false;
  napi_get_value_bool(env, v, &b);
  return b;
}

// init(timeoutMs) -> { rank, size, threadLevel, version }
napi_value Init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  double timeout = 0;
  if (argc >= 1) napi_get_value_double(env, argv[0], &timeout);
  if (!(timeout >= 0)) return throwRange(env, "init: the timeout must be a non-negative number of ms");
  {
    std::unique_lock<std::mutex> lk(g.m);
    if (g.finalized) return throwError(env, "init: MPI was already finalised in this process; it cannot restart");
    if (!g.started) {
      g.started = true;
      g.thread = new std::thread(commMain);
    }
    g.cv.wait(lk, [] { return g.ready; });
    if (!g.initError.empty()) return throwError(env, "init: " + g.initError);
    g.timeoutMs = timeout;
  }
  napi_value r, v;
  CHECK_NAPI(napi_create_object(env, &r));
  napi_create_int32(env, g.rank, &v);
  napi_set_named_property(env, r, "rank", v);
  napi_create_int32(env, g.size, &v);
  napi_set_named_property(env, r, "size", v);
  const char* level = g.provided == MPI_THREAD_MULTIPLE     ? "multiple"
                      : g.provided == MPI_THREAD_SERIALIZED ? "serialized"
                      : g.provided == MPI_THREAD_FUNNELED   ? "funneled"
                                                            : "single";
  napi_create_string_utf8(env, level, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, r, "threadLevel", v);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  std::string ver(version, len);
  size_t nl = ver.find_first_of(",\n");
  if (nl != std::string::npos) ver = ver.substr(0, nl);
  napi_create_string_utf8(env, ver.c_str(), ver.size(), &v);
  napi_set_named_property(env, r, "version", v);
  return r;
}

// allReduce(arr, offset, count, elem, red, async)
napi_value AllReduce(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 6) return throwError(env, "allReduce: expected 6 arguments");
  if (!requireReady(env, "allReduce")) return nullptr;
  auto op = std::make_shared<Op>();
  op->kind = kAllReduce;
  if (!getBuf(env, argv[0], argv[1], argv[2], "allReduce", "the tensor", &op->a)) return nullptr;
  if (!getInt(env, argv[3], "allReduce", "the element kind", 0, 2, &op->elem)) return nullptr;
  if (!getInt(env, argv[4], "allReduce", "the reduction", 0, 3, &op->red)) return nullptr;
  if (!checkElem(env, "allReduce", op->a, op->elem)) return nullptr;
  if (op->red == kMean && !isFloatType(op->a.type, op->elem)) {
    return throwError(env, std::string("allReduce: op 'mean' needs floating-point data, got ") +
                               (op->elem == kBool ? "bool" : typeName(op->a.type)));
  }
  if ((op->a.type == napi_bigint64_array || op->a.type == napi_biguint64_array) && op->red == kMean) {
    return throwError(env, "allReduce: op 'mean' needs floating-point data");
  }
  return submit(env, op, getBool(env, argv[5]), argv[0], nullptr);
}

// broadcast(arr, offset, count, root, async)
napi_value Broadcast(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 5) return throwError(env, "broadcast: expected 5 arguments");
  if (!requireReady(env, "broadcast")) return nullptr;
  auto op = std::make_shared<Op>();
  op->kind = kBroadcast;
  if (!getBuf(env, argv[0], argv[1], argv[2], "broadcast", "the tensor", &op->a)) return nullptr;
  if (!getInt(env, argv[3], "broadcast", "the source rank", 0, g.size - 1, &op->peer)) return nullptr;
  return submit(env, op, getBool(env, argv[4]), argv[0], nullptr);
}

// allGather(send, sOff, sCount, recv, rOff, rCount, async): recv holds size x send, in rank order
napi_value AllGather(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 7) return throwError(env, "allGather: expected 7 arguments");
  if (!requireReady(env, "allGather")) return nullptr;
  auto op = std::make_shared<Op>();
  op->kind = kAllGather;
  if (!getBuf(env, argv[0], argv[1], argv[2], "allGather", "the input", &op->a)) return nullptr;
  if (!getBuf(env, argv[3], argv[4], argv[5], "allGather", "the output", &op->b)) return nullptr;
  if (op->a.type != op->b.type) {
    return throwError(env, std::string("allGather: the output is a ") + typeName(op->b.type) +
                               ", the input a " + typeName(op->a.type));
  }
  if (op->b.count != op->a.count * g.size) {
    return throwRange(env, "allGather: the output has " + std::to_string(op->b.count) +
                               " elements; expected world size " + std::to_string(g.size) + " x " +
                               std::to_string(op->a.count));
  }
  if (op->a.count > INT32_MAX) return throwRange(env, "allGather: more than 2^31-1 elements per rank");
  return submit(env, op, getBool(env, argv[6]), argv[0], argv[3]);
}

// reduceScatter(send, sOff, sCount, recv, rOff, rCount, elem, red, async): send holds size x recv
napi_value ReduceScatter(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 9) return throwError(env, "reduceScatter: expected 9 arguments");
  if (!requireReady(env, "reduceScatter")) return nullptr;
  auto op = std::make_shared<Op>();
  op->kind = kReduceScatter;
  if (!getBuf(env, argv[0], argv[1], argv[2], "reduceScatter", "the input", &op->a)) return nullptr;
  if (!getBuf(env, argv[3], argv[4], argv[5], "reduceScatter", "the output", &op->b)) return nullptr;
  if (!getInt(env, argv[6], "reduceScatter", "the element kind", 0, 2, &op->elem)) return nullptr;
  if (!getInt(env, argv[7], "reduceScatter", "the reduction", 0, 3, &op->red)) return nullptr;
  if (op->a.type != op->b.type) {
    return throwError(env, std::string("reduceScatter: the output is a ") + typeName(op->b.type) +
                               ", the input a " + typeName(op->a.type));
  }
  if (!checkElem(env, "reduceScatter", op->a, op->elem)) return nullptr;
  if (op->a.count != op->b.count * g.size) {
    return throwRange(env, "reduceScatter: the input has " + std::to_string(op->a.count) +
                               " elements; expected world size " + std::to_string(g.size) + " x " +
                               std::to_string(op->b.count));
  }
  if (op->red == kMean && !isFloatType(op->a.type, op->elem)) {
    return throwError(env, std::string("reduceScatter: op 'mean' needs floating-point data, got ") +
                               (op->elem == kBool ? "bool" : typeName(op->a.type)));
  }
  if (op->b.count > INT32_MAX) return throwRange(env, "reduceScatter: more than 2^31-1 elements per rank");
  return submit(env, op, getBool(env, argv[8]), argv[0], argv[3]);
}

// send(arr, off, count, dst, tag, async) / recv(arr, off, count, src, tag, async)
napi_value PointToPoint(napi_env env, napi_callback_info info, Kind kind) {
  const char* name = kKindNames[kind];
  size_t argc = 6;
  napi_value argv[6];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 6) return throwError(env, std::string(name) + ": expected 6 arguments");
  if (!requireReady(env, name)) return nullptr;
  auto op = std::make_shared<Op>();
  op->kind = kind;
  if (!getBuf(env, argv[0], argv[1], argv[2], name, "the tensor", &op->a)) return nullptr;
  if (!getInt(env, argv[3], name, kind == kSend ? "the destination rank" : "the source rank", 0, g.size - 1,
              &op->peer)) {
    return nullptr;
  }
  if (!getInt(env, argv[4], name, "the tag", 0, 32767, &op->tag)) return nullptr;
  if (op->a.count > INT32_MAX) return throwRange(env, std::string(name) + ": more than 2^31-1 elements");
  return submit(env, op, getBool(env, argv[5]), argv[0], nullptr);
}
napi_value Send(napi_env env, napi_callback_info info) { return PointToPoint(env, info, kSend); }
napi_value Recv(napi_env env, napi_callback_info info) { return PointToPoint(env, info, kRecv); }

// barrier(async)
napi_value Barrier(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (!requireReady(env, "barrier")) return nullptr;
  auto op = std::make_shared<Op>();
  op->kind = kBarrier;
  return submit(env, op, argc >= 1 && getBool(env, argv[0]), nullptr, nullptr);
}

// finalize(): drain the queue, MPI_Finalize on the communication thread, join it.
napi_value Finalize(napi_env env, napi_callback_info) {
  {
    std::lock_guard<std::mutex> lk(g.m);
    if (!g.started || !g.ready || !g.initError.empty() || g.finalized) return nullptr;
    g.finalized = true;
  }
  auto op = std::make_shared<Op>();
  op->kind = kStop;
  enqueue(op);
  g.thread->join();
  return nullptr;
}

// abort(code, message): print the message and end the whole job (every rank) with MPI_Abort.
napi_value Abort(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int code = 1;
  if (argc >= 1) napi_get_value_int32(env, argv[0], &code);
  if (argc >= 2) {
    char buf[4096];
    size_t len = 0;
    if (napi_get_value_string_utf8(env, argv[1], buf, sizeof buf, &len) == napi_ok && len > 0) {
      fprintf(stderr, "%.*s\n", int(len), buf);
      fflush(stderr);
    }
  }
  bool inited = false;
  {
    std::lock_guard<std::mutex> lk(g.m);
    inited = g.started && g.ready && g.initError.empty() && !g.finalized;
  }
  if (inited) MPI_Abort(MPI_COMM_WORLD, code);
  _exit(code);
  return nullptr;
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value r, v;
  CHECK_NAPI(napi_create_object(env, &r));
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  std::string ver(version, len);
  size_t nl = ver.find_first_of(",\n");
  if (nl != std::string::npos) ver = ver.substr(0, nl);
  napi_create_string_utf8(env, ver.c_str(), ver.size(), &v);
  napi_set_named_property(env, r, "version", v);
  int initialized = 0;
  MPI_Initialized(&initialized);
  napi_get_boolean(env, initialized != 0, &v);
  napi_set_named_property(env, r, "initialized", v);
  return r;
}

// Open MPI loads its components with dlopen and they resolve libmpi's symbols globally; Node loads addons
// (and so libmpi, as their dependency) with RTLD_LOCAL. Reopen libmpi with RTLD_GLOBAL before MPI_Init.
void promoteLibmpi() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) != 0 && info.dli_fname != nullptr) {
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  }
}

napi_value ModuleInit(napi_env env, napi_value exports) {
  promoteLibmpi();
  napi_property_descriptor workProps[] = {
      {"wait", nullptr, WorkWait, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"test", nullptr, WorkTest, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"promise", nullptr, WorkPromise, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_value workCtor;
  CHECK_NAPI(napi_define_class(env, "Work", NAPI_AUTO_LENGTH, WorkCtor, nullptr, 3, workProps, &workCtor));
  CHECK_NAPI(napi_create_reference(env, workCtor, 1, &g.workCtor));
  napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"allReduce", nullptr, AllReduce, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"broadcast", nullptr, Broadcast, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"allGather", nullptr, AllGather, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reduceScatter", nullptr, ReduceScatter, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"send", nullptr, Send, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"recv", nullptr, Recv, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"barrier", nullptr, Barrier, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"finalize", nullptr, Finalize, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"abort", nullptr, Abort, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"Work", nullptr, nullptr, nullptr, nullptr, workCtor, napi_default, nullptr},
  };
  CHECK_NAPI(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, ModuleInit)
