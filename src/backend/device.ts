/**
 * Device storage: tensor data that lives in memory the host cannot read synchronously (a GPU buffer).
 *
 * The core keeps one storage type, the typed array (`Tensor._data`, `View.data`). A backend whose memory is on a
 * device hands out *device arrays*: objects that stand in for a typed array (right `length`, `instanceof` the
 * dtype's array class) and keep a host copy and a device copy coherent. While the host copy is valid, reading
 * and writing elements works as on any typed array (creation functions fill fresh tensors that way, and the
 * backend uploads them on first use); once a kernel has written the device copy, a synchronous read fails with
 * a `DeviceReadError` that names the asynchronous call, until `await t.data()` has brought the values back.
 *
 * This module is the only thing the core knows of such storage: which arrays are device arrays, and how to make
 * their host copy valid asynchronously. See docs/webgpu.md.
 */
import type { TypedArray } from "../dtype.ts";

/** What a device backend registers for each device array it hands out. */
export interface DeviceStorage {
  /** The backend's name, for messages. */
  readonly backend: string;
  /** True when the host copy holds the current values (synchronous reads work). */
  hostValid(): boolean;
  /** Make the host copy valid (reads the device copy back); resolves when synchronous reads work. */
  toHost(): Promise<void>;
}

const registry = new WeakMap<object, DeviceStorage>();

/** @internal Declare `data` a device array managed by `s` (called by device backends). */
export function registerDeviceArray(data: TypedArray, s: DeviceStorage): void {
  registry.set(data, s);
}

/** The device storage behind `data`, or undefined for an ordinary typed array (or null). */
export function deviceStorageOf(data: TypedArray | null): DeviceStorage | undefined {
  return data === null ? undefined : registry.get(data);
}

/**
 * Make `data`'s values readable synchronously: a no-op for ordinary typed arrays, an asynchronous read-back
 * for a device array whose host copy is stale.
 */
export async function syncToHost(data: TypedArray | null): Promise<void> {
  const s = deviceStorageOf(data);
  if (s !== undefined && !s.hostValid()) await s.toHost();
}

/**
 * A synchronous read (or write) of values that live on a device: `dataSync`, `item`, `toArray`, printing, a
 * control-flow predicate, or a kernel that runs on the host.
 */
export class DeviceReadError extends Error {
  override name = "DeviceReadError";
}

/** The message of a synchronous access to values that live on `backend`'s device. */
export function deviceReadMessage(backend: string, what: string): string {
  return (
    `${what}: this tensor's values live on the ${backend} device and cannot be read synchronously; ` +
    "read them with `await t.data()` (after which dataSync, item, toArray and printing work until the next " +
    "kernel writes the tensor)"
  );
}
