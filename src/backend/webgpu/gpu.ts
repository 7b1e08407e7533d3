/// <reference types="@webgpu/types" />
/**
 * The WebGPU device context: storage (device arrays with a coherent host copy), the size-class buffer pool,
 * command batching and the pipeline cache.
 *
 * Batching: kernels record dispatches into one open command encoder (one compute pass) and their parameters
 * (shapes, strides, offsets) into one host array; `flush` writes the parameters into a single GPU buffer and
 * submits everything at once. A batch is flushed when the parameter block is full, when a read-back needs
 * results, or when an upload would overwrite a buffer the pending batch still uses.
 *
 * Memory: every GPU tensor's storage is a device array (see src/backend/device.ts) over a `GpuStorage`. Its
 * buffer comes from a pool keyed by size class; when the device array is garbage-collected a
 * FinalizationRegistry returns the buffer, which re-enters the pool at the next flush (never during a batch
 * that may still read it).
 */
import { DeviceReadError, type DeviceStorage, deviceReadMessage, registerDeviceArray } from "../device.ts";
import { allocTyped, type DType, type TypedArray } from "../../dtype.ts";

/** The dtypes that live on the GPU (float64 has no WGSL type and stays on the host). */
export type GpuDType = "float32" | "int32" | "bool";

/** Bytes per element on the device: bool is stored as u32 (WGSL has no 8-bit storage). */
export const DEVICE_BYTES = 4;

const PARAMS_BYTES = 1 << 16;
const PARAM_ALIGN = 256;
/** Room kept for one dispatch's parameters (a rank-32 view set needs well under this). */
const PARAM_RESERVE = 4096;
const DATA_USAGE = 0x80 | 0x04 | 0x08; // STORAGE | COPY_SRC | COPY_DST

/** The size class of a request: powers of two and 1.5x powers of two, at least 16 bytes. */
export function sizeClass(bytes: number): number {
  if (bytes <= 16) return 16;
  const p = 2 ** Math.ceil(Math.log2(bytes));
  return bytes <= (p * 3) / 4 ? (p * 3) / 4 : p;
}

/** The memory figure of the webgpu backend. */
export interface GpuMemory {
  /** Bytes of GPU buffers held by live tensors (size classes, so a little more than the tensors need). */
  bytesInUse: number;
  /** Bytes of free buffers kept in the pool for reuse (including those waiting for the batch to be submitted). */
  bytesInPool: number;
  buffersInUse: number;
  buffersInPool: number;
}

const READ_ONLY_METHODS = new Set<string | symbol>([
  "slice",
  "indexOf",
  "lastIndexOf",
  "includes",
  "join",
  "toString",
  "toLocaleString",
  "forEach",
  "map",
  "filter",
  "reduce",
  "reduceRight",
  "every",
  "some",
  "find",
  "findIndex",
  "findLast",
  "findLastIndex",
  "at",
  "entries",
  "keys",
  "values",
  Symbol.iterator,
]);

/**
 * A value-dependent failure a kernel may have found on the device (a matrix that is not positive-definite, a
 * zero pivot): the kernel writes one int32 info word per matrix (0: fine) into `info`; the words are read back
 * with the next read-back of any storage, and the error is raised by reading a value computed from the
 * kernel's output (its storage carries the check; see `Gpu.readBack`).
 */
export class DeviceCheck {
  /** 0 not read yet, 1 fine, 2 failed (`error` set). */
  state = 0;
  error: Error | null = null;
  /** Resolves when a read-back in flight has resolved this check. */
  reading: Promise<void> | null = null;

  constructor(
    /** The info words (`count` int32, at least 16 bytes). */
    readonly info: GPUBuffer,
    readonly count: number,
    /** The error for the first matrix `b` whose info word is `word` (not 0). */
    readonly fail: (b: number, word: number) => Error,
  ) {}
}

/**
 * The storage behind one device array: a GPU buffer (allocated on first device use) and a host copy (allocated
 * on first host access), with a validity flag each. A kernel writing the buffer invalidates the host copy; a
 * host write invalidates the buffer (it is uploaded again before the next kernel reads it).
 */
export class GpuStorage implements DeviceStorage {
  readonly backend = "webgpu";
  buffer: GPUBuffer | null = null;
  /** The host copy; null with `hostOk` means all zeros (nothing materialised yet). */
  host: TypedArray | null = null;
  hostOk = true;
  devOk = false;
  /** The batch that last used the buffer (an upload into it must wait until that batch is submitted). */
  lastUsed = 0;
  /** Bumped by every device write (a read-back in flight checks it). */
  ver = 0;
  /** The device checks of the kernels the values were computed from, not yet known to be fine (or null). */
  checks: DeviceCheck[] | null = null;

  constructor(
    readonly gpu: Gpu,
    readonly dtype: GpuDType,
    readonly length: number,
  ) {}

  hostValid(): boolean {
    return this.hostOk;
  }

  toHost(): Promise<void> {
    return this.gpu.readBack(this);
  }

  /** The host copy for a synchronous access, or a DeviceReadError when only the device has the values. */
  hostArray(): TypedArray {
    if (!this.hostOk) throw new DeviceReadError(deviceReadMessage("webgpu", "synchronous access"));
    this.host ??= allocTyped(this.dtype, this.length);
    return this.host;
  }

  /** The GPU buffer holding the current values (uploaded from the host copy if that is newer). */
  deviceBuffer(): GPUBuffer {
    const g = this.gpu;
    if (!this.devOk) {
      if (this.buffer === null) this.buffer = g.acquire(this.length * DEVICE_BYTES);
      else if (this.lastUsed === g.epoch) g.flush();
      if (this.host !== null) g.upload(this.buffer, this.host, this.dtype);
      else g.clear(this.buffer);
      this.devOk = true;
    }
    this.lastUsed = g.epoch;
    if (this.checks !== null) g.noteChecks(this.checks);
    return this.buffer!;
  }

  /** The buffer a kernel is about to overwrite entirely (or partly, with `partial`: the old values kept). */
  writeBuffer(partial: boolean): GPUBuffer {
    const g = this.gpu;
    if (partial || this.buffer === null) {
      if (partial) this.deviceBuffer();
      else this.buffer = g.acquire(this.length * DEVICE_BYTES);
    }
    this.devOk = true;
    this.hostOk = false;
    this.host = null;
    this.ver++;
    this.lastUsed = g.epoch;
    g.noteOutput(this);
    return this.buffer!;
  }
}

const storageOf = new WeakMap<object, GpuStorage>();

/** The GpuStorage behind a device array of this backend, or undefined for an ordinary typed array. */
export function gpuStorage(data: TypedArray): GpuStorage | undefined {
  return storageOf.get(data);
}

const PROTOS: Record<GpuDType, object> = {
  float32: Float32Array.prototype,
  int32: Int32Array.prototype,
  bool: Uint8Array.prototype,
};

function isIndex(p: string): boolean {
  const c = p.charCodeAt(0);
  return c >= 48 && c <= 57;
}

/** `fill(v)` over a whole device array whose host copy is stale: a new host copy (zeros: none), uploaded on use. */
function fillAll(s: GpuStorage, arr: unknown, v: number, start?: number, end?: number): unknown {
  if ((start ?? 0) !== 0 || (end ?? s.length) < s.length) return s.hostArray().fill(v, start, end);
  s.host = v === 0 ? null : allocTyped(s.dtype, s.length).fill(v);
  s.hostOk = true;
  s.devOk = false;
  s.ver++;
  s.checks = null;
  return arr;
}

/** One handler for every device array: element access goes to the host copy, with the validity rules. */
const handler: ProxyHandler<GpuStorage> = {
  get(s, p, receiver) {
    if (typeof p === "string") {
      if (isIndex(p)) return (s.hostArray() as unknown as Record<string, number>)[p];
      // filling the whole array needs no old values (jit's arena zeroes reused storage this way)
      if (p === "fill" && !s.hostOk)
        return (v: number, start?: number, end?: number) => fillAll(s, receiver, v, start, end);
      if (p === "length") return s.length;
      if (p === "BYTES_PER_ELEMENT") return s.dtype === "bool" ? 1 : 4;
      // the host array's sizes (memory accounting reads them; they need no values)
      if (p === "byteLength") return s.length * (s.dtype === "bool" ? 1 : 4);
      if (p === "byteOffset") return 0;
      if (p === "constructor") return PROTOS[s.dtype].constructor;
    }
    const h = s.hostArray();
    const v = Reflect.get(h, p, h);
    if (typeof v !== "function") return v;
    // a method may write (set, fill, sort, an alias from subarray): the device copy is stale from now on
    if (!READ_ONLY_METHODS.has(p)) s.devOk = false;
    return (v as (...a: unknown[]) => unknown).bind(h);
  },
  set(s, p, v) {
    if (typeof p === "string" && isIndex(p)) {
      (s.hostArray() as unknown as Record<string, unknown>)[p] = v;
      s.devOk = false;
      return true;
    }
    return false;
  },
  has(s, p) {
    if (typeof p === "string" && isIndex(p)) return Number(p) < s.length;
    return p in PROTOS[s.dtype];
  },
  getPrototypeOf(s) {
    return PROTOS[s.dtype];
  },
};

/** The WebGPU device, its pool, the pending batch and the compiled pipelines. */
export class Gpu {
  /** Id of the batch being recorded. */
  epoch = 1;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly params: GPUBuffer;
  private readonly paramHost = new ArrayBuffer(PARAMS_BYTES);
  private readonly paramI32 = new Int32Array(this.paramHost);
  private readonly paramF32 = new Float32Array(this.paramHost);
  private paramUsed = 0;
  private readonly pool = new Map<number, GPUBuffer[]>();
  private pendingFree: GPUBuffer[] = [];
  /** Temporaries of the dispatch being prepared: freed once it is recorded (a flush meanwhile keeps them). */
  private temps: GPUBuffer[] = [];
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly finalizer = new FinalizationRegistry<GpuStorage>((s) => this.release(s));
  private inUse = 0;
  private inUseCount = 0;
  private pooled = 0;
  private pooledCount = 0;
  /** Device checks of the kernel call being recorded: those its inputs carry and those it adds. */
  private callChecks: DeviceCheck[] = [];
  /** The storages the kernel call being recorded writes (they get `callChecks`). */
  private callOutputs: GpuStorage[] = [];
  private callDepth = 0;
  /** Device checks whose info words have not been read back yet. */
  private unread: DeviceCheck[] = [];
  /** Submissions so far (for tests: batching keeps this well below the number of kernels). */
  submits = 0;
  dispatches = 0;

  constructor(
    readonly device: GPUDevice,
    readonly adapterInfo: string,
  ) {
    this.params = device.createBuffer({ size: PARAMS_BYTES, usage: 0x80 | 0x08 });
  }

  /** A new device array of `length` elements (zero-filled: nothing is uploaded until first use). */
  alloc(dtype: GpuDType, length: number): TypedArray {
    const s = new GpuStorage(this, dtype, length);
    const arr = new Proxy(s, handler) as unknown as TypedArray;
    storageOf.set(arr, s);
    registerDeviceArray(arr, s);
    this.finalizer.register(arr, s);
    return arr;
  }

  // ---- device checks (docs/webgpu.md, "Errors that depend on GPU values") --------------------------------

  /** Start a kernel call: the checks its inputs carry pass to the storages it writes (calls may nest). */
  beginCall(): void {
    this.callDepth++;
  }

  /** End a kernel call: its outputs carry the checks of its inputs and its own (or none). */
  endCall(): void {
    if (--this.callDepth > 0) return;
    this.assignChecks();
    this.resetCall();
  }

  private assignChecks(): void {
    if (this.callOutputs.length === 0) return;
    // the usual case: no input carries a check (no array made)
    const live = this.callChecks.length === 0 ? null : this.callChecks.filter((c) => c.state !== 1);
    for (const s of this.callOutputs) s.checks = live === null || live.length === 0 ? null : live;
  }

  private resetCall(): void {
    this.callChecks.length = 0;
    this.callOutputs.length = 0;
  }

  /** An input of the current call carries `checks`. */
  noteChecks(checks: readonly DeviceCheck[]): void {
    for (const c of checks) if (c.state !== 1 && !this.callChecks.includes(c)) this.callChecks.push(c);
  }

  /** The current call writes `s`. */
  noteOutput(s: GpuStorage): void {
    if (!this.callOutputs.includes(s)) this.callOutputs.push(s);
  }

  /**
   * A check of the current call: `count` info words (a fresh buffer the kernel writes, 0 per fine matrix) and
   * the error of a failing one. The call's outputs carry it.
   */
  addCheck(count: number, fail: (b: number, word: number) => Error): DeviceCheck {
    const c = new DeviceCheck(this.acquire(Math.max(1, count) * DEVICE_BYTES), count, fail);
    this.unread.push(c);
    this.callChecks.push(c);
    return c;
  }

  // ---- buffers ----------------------------------------------------------------------------------------------

  /** A buffer of at least `bytes` from the pool or fresh. */
  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const free = this.pool.get(size);
    let b = free?.pop();
    if (b !== undefined) {
      this.pooled -= size;
      this.pooledCount--;
    } else {
      b = this.device.createBuffer({ size, usage: DATA_USAGE });
    }
    this.inUse += size;
    this.inUseCount++;
    return b;
  }

  /** Give a buffer back; it becomes reusable once the batch that may read it is submitted. */
  free(b: GPUBuffer): void {
    this.inUse -= b.size;
    this.inUseCount--;
    this.pooled += b.size;
    this.pooledCount++;
    this.pendingFree.push(b);
  }

  private release(s: GpuStorage): void {
    if (s.buffer !== null) this.free(s.buffer);
    s.buffer = null;
  }

  memory(): GpuMemory {
    return {
      bytesInUse: this.inUse,
      bytesInPool: this.pooled,
      buffersInUse: this.inUseCount,
      buffersInPool: this.pooledCount,
    };
  }

  /** Destroy every pooled buffer (their memory goes back to the driver). */
  emptyPool(): void {
    this.flush();
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    this.pooled = 0;
    this.pooledCount = 0;
  }

  /** Host values into `buf` (queued before the pending batch: the caller made sure it does not use `buf`). */
  upload(buf: GPUBuffer, host: TypedArray, dtype: DType): void {
    const src = dtype === "bool" ? Uint32Array.from(host as Uint8Array) : host;
    if (src.length > 0) this.device.queue.writeBuffer(buf, 0, src.buffer, src.byteOffset, src.byteLength);
  }

  /** Zero `buf` (recorded in the batch). */
  clear(buf: GPUBuffer): void {
    this.endPass().clearBuffer(buf);
  }

  /** A temporary buffer holding `host` (an ordinary typed array used as a kernel input). */
  temporary(host: TypedArray, dtype: GpuDType): GPUBuffer {
    const b = this.acquire(host.length * DEVICE_BYTES);
    this.upload(b, host, dtype);
    this.temps.push(b);
    return b;
  }

  /** A copy of `src` into a temporary buffer, recorded in the batch (to read and write one buffer in a kernel). */
  snapshot(src: GPUBuffer): GPUBuffer {
    const b = this.acquire(src.size);
    this.endPass().copyBufferToBuffer(src, 0, b, 0, src.size);
    this.temps.push(b);
    return b;
  }

  // ---- recording and submission -----------------------------------------------------------------------------

  private encoderNow(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): GPUCommandEncoder {
    if (this.pass !== null) {
      this.pass.end();
      this.pass = null;
    }
    return this.encoderNow();
  }

  /** The compiled pipeline for `key`, built from `code()` on first use. */
  pipeline(key: string, code: () => string): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (p === undefined) {
      const module = this.device.createShaderModule({ code: code() });
      p = this.device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /**
   * Make room for one dispatch's parameters before its buffers are prepared: a flush between preparing them
   * (uploads, snapshots) and recording the dispatch would let a pooled snapshot be reused too early.
   */
  reserve(): void {
    if (this.paramUsed + PARAM_RESERVE > PARAMS_BYTES) this.flush();
  }

  /**
   * Record one dispatch: `params` (int32 words; floats go in as their bits) become the last binding, after
   * `buffers` (inputs first, the output last as the shader declares them).
   */
  dispatch(
    pipe: GPUComputePipeline,
    buffers: readonly GPUBuffer[],
    params: readonly number[],
    groups: [number, number, number],
    floats: readonly number[] = [],
  ): void {
    const words = params.length + floats.length;
    const bytes = Math.max(16, words * 4);
    if (this.paramUsed + bytes > PARAMS_BYTES) this.flush();
    const at = this.paramUsed;
    const w = at / 4;
    for (let i = 0; i < params.length; i++) this.paramI32[w + i] = params[i];
    for (let i = 0; i < floats.length; i++) this.paramF32[w + params.length + i] = floats[i];
    this.paramUsed = Math.ceil((at + bytes) / PARAM_ALIGN) * PARAM_ALIGN;
    const entries: GPUBindGroupEntry[] = buffers.map((buffer, binding) => ({
      binding,
      resource: { buffer },
    }));
    entries.push({ binding: buffers.length, resource: { buffer: this.params, offset: at, size: bytes } });
    const group = this.device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries });
    if (this.pass === null) this.pass = this.encoderNow().beginComputePass();
    this.pass.setPipeline(pipe);
    this.pass.setBindGroup(0, group);
    this.pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    this.dispatches++;
    for (const b of this.temps) this.free(b);
    this.temps = [];
    if (this.callDepth === 0) {
      this.assignChecks();
      this.resetCall();
    }
  }

  /** Submit the pending batch (parameters first), and let the buffers freed meanwhile be reused. */
  flush(): void {
    if (this.encoder === null) return;
    this.endPass();
    if (this.paramUsed > 0) this.device.queue.writeBuffer(this.params, 0, this.paramHost, 0, this.paramUsed);
    this.device.queue.submit([this.encoder.finish()]);
    this.submits++;
    this.encoder = null;
    this.paramUsed = 0;
    this.epoch++;
    for (const b of this.pendingFree) {
      let list = this.pool.get(b.size);
      if (list === undefined) this.pool.set(b.size, (list = []));
      list.push(b);
    }
    this.pendingFree = [];
  }

  /**
   * Read a storage's buffer back into its host copy. The info words of every device check not read yet come
   * back in the same copy; if a check the storage carries failed, its error is thrown and the host copy stays
   * stale (reading again throws again).
   */
  async readBack(s: GpuStorage): Promise<void> {
    while (!s.hostOk) {
      const ver = s.ver;
      const carried = s.checks;
      const bytes = s.length * DEVICE_BYTES;
      if (bytes === 0 || s.buffer === null) {
        s.hostOk = true;
        return;
      }
      const checks = this.unread;
      this.unread = [];
      let total = bytes;
      for (const c of checks) total += c.count * DEVICE_BYTES;
      const staging = this.device.createBuffer({ size: Math.max(16, total), usage: 0x01 | 0x08 }); // MAP_READ | COPY_DST
      const enc = this.endPass();
      enc.copyBufferToBuffer(s.buffer, 0, staging, 0, bytes);
      let at = bytes;
      for (const c of checks) {
        if (c.count > 0) enc.copyBufferToBuffer(c.info, 0, staging, at, c.count * DEVICE_BYTES);
        at += c.count * DEVICE_BYTES;
      }
      let done = () => {};
      const reading = new Promise<void>((r) => {
        done = r;
      });
      for (const c of checks) c.reading = reading;
      this.flush();
      try {
        await staging.mapAsync(1); // GPUMapMode.READ
        const raw = staging.getMappedRange(0, total);
        let host: TypedArray;
        if (s.dtype === "bool") host = Uint8Array.from(new Uint32Array(raw, 0, s.length));
        else if (s.dtype === "int32") host = new Int32Array(raw.slice(0, bytes));
        else host = new Float32Array(raw.slice(0, bytes));
        const words = new Int32Array(raw.slice(bytes, total));
        at = 0;
        for (const c of checks) {
          const w = words.subarray(at, at + c.count);
          at += c.count;
          const bad = w.findIndex((x) => x !== 0);
          c.state = bad < 0 ? 1 : 2;
          if (bad >= 0) c.error = c.fail(bad, w[bad]);
          this.free(c.info);
        }
        staging.unmap();
        staging.destroy();
        // the checks this storage carries (read by this read-back or by one in flight)
        for (const c of carried ?? []) if (c.state === 0 && c.reading !== null) await c.reading;
        const failed = carried?.find((c) => c.state === 2);
        if (failed !== undefined) throw failed.error!;
        if (s.ver === ver) {
          s.host = host;
          s.hostOk = true;
          s.checks = null;
        }
      } finally {
        done();
      }
    }
  }

  /** Resolves when every submitted command has run (and the pending batch is submitted). */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }
}
