/**
 * Creating, filling and reading GPU buffers. Reads are batched: one submit and one wait for any
 * number of buffers, since each wait costs >= ~10 ms in Deno whatever its size.
 *
 * @module
 */
import type { GpuContext } from "./device.ts";
import { throwBatchErrors } from "./errors.ts";
import { createTrackedBuffer } from "./memory.ts";

/** Usage of a general-purpose storage buffer: bindable, copyable both ways. */
export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Creates a zero-initialised storage buffer of `byteSize` bytes (rounded up to 4, at least 4). */
export function createStorageBuffer(gpu: GpuContext, byteSize: number, label?: string): GPUBuffer {
  if (!Number.isFinite(byteSize) || byteSize < 0) {
    throw new RangeError(`buffer size must be a non-negative number of bytes, got ${byteSize}`);
  }
  const size = Math.max(4, Math.ceil(byteSize / 4) * 4);
  const max = gpu.limits.maxBufferSize ?? Infinity;
  if (size > max) {
    throw new RangeError(
      `${label ?? "buffer"}: ${size} bytes exceeds this device's maxBufferSize of ${max}`,
    );
  }
  return createTrackedBuffer(gpu.device, { label, size, usage: STORAGE_USAGE });
}

/**
 * Creates a storage buffer holding `data`.
 *
 * @example
 * ```ts
 * const x = uploadBuffer(gpu, new Float32Array([1, 2, 3]), "x");
 * ```
 */
export function uploadBuffer(gpu: GpuContext, data: ArrayBufferView, label?: string): GPUBuffer {
  const buffer = createStorageBuffer(gpu, data.byteLength, label);
  writeBuffer(gpu, buffer, data);
  return buffer;
}

/**
 * Writes `data` at `byteOffset` (a multiple of 4) of `buffer`, padding the tail to a multiple of 4
 * bytes; a write past the end is a RangeError.
 */
export function writeBuffer(
  gpu: GpuContext,
  buffer: GPUBuffer,
  data: ArrayBufferView,
  byteOffset = 0,
): void {
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 4 !== 0) {
    throw new RangeError(`writeBuffer: offset ${byteOffset} must be a non-negative multiple of 4`);
  }
  // Checked here: WebGPU reports an out-of-range write only as an uncaptured error and drops it.
  const end = byteOffset + Math.ceil(data.byteLength / 4) * 4;
  if (end > buffer.size) {
    const name = buffer.label ? ` '${buffer.label}'` : "";
    throw new RangeError(
      `writeBuffer: bytes ${byteOffset}..${end} lie outside the ${buffer.size}-byte buffer${name}`,
    );
  }
  if (data.byteLength === 0) return;
  // Copy when padding is needed or the view sits on a SharedArrayBuffer (writeBuffer wants an
  // ArrayBuffer); the common case passes the caller's bytes through untouched.
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let bytes: Uint8Array<ArrayBuffer>;
  if (view.byteLength % 4 !== 0 || !(view.buffer instanceof ArrayBuffer)) {
    bytes = new Uint8Array(Math.ceil(view.byteLength / 4) * 4);
    bytes.set(view);
  } else {
    bytes = view as Uint8Array<ArrayBuffer>;
  }
  gpu.device.queue.writeBuffer(buffer, byteOffset, bytes);
}

/** A region of a buffer to read back. */
export interface ReadRequest {
  /** The buffer (needs COPY_SRC usage). */
  buffer: GPUBuffer;
  /** Byte offset, a multiple of 4; default 0. */
  offset?: number;
  /** Byte size, a multiple of 4; default the rest of the buffer. */
  size?: number;
}

/**
 * Reads several buffer regions with one submit and one wait. Returns a copy of each region.
 *
 * @example
 * ```ts
 * const [a, b] = await readBuffers(gpu, [{ buffer: x }, { buffer: y, size: 16 }]);
 * console.log(new Float32Array(a));
 * ```
 */
export async function readBuffers(
  gpu: GpuContext,
  requests: ReadRequest[],
): Promise<ArrayBuffer[]> {
  const { device } = gpu;
  // WebGPU reports a bad copy only as an uncaptured validation error and the read then returns
  // zeros, so every region is checked here, where the mistake can still be named.
  const sizes = requests.map(checkRegion);
  const encoder = device.createCommandEncoder();
  const staging = requests.map((r, i) => {
    const size = Math.max(4, sizes[i]);
    const s = createTrackedBuffer(device, {
      label: "jackpot readback",
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    if (sizes[i] > 0) encoder.copyBufferToBuffer(r.buffer, r.offset ?? 0, s, 0, sizes[i]);
    return s;
  });
  device.queue.submit([encoder.finish()]);
  await Promise.all(staging.map((s) => s.mapAsync(GPUMapMode.READ)));
  try {
    // Work skipped because WebGPU rejected its batch would read back as zeros: refuse instead.
    await throwBatchErrors(device);
  } catch (e) {
    for (const s of staging) s.destroy();
    throw e;
  }
  return staging.map((s, i) => {
    const copy = s.getMappedRange(0, Math.max(4, sizes[i])).slice(0, sizes[i]);
    s.unmap();
    s.destroy();
    return copy;
  });
}

function checkRegion(r: ReadRequest): number {
  const offset = r.offset ?? 0;
  const name = r.buffer.label ? ` '${r.buffer.label}'` : "";
  if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0) {
    throw new RangeError(`readBuffers: offset ${offset} must be a non-negative multiple of 4`);
  }
  if (offset > r.buffer.size) {
    throw new RangeError(
      `readBuffers: offset ${offset} is past the end of the ${r.buffer.size}-byte buffer${name}`,
    );
  }
  const size = r.size ?? r.buffer.size - offset;
  if (!Number.isInteger(size) || size < 0 || size % 4 !== 0) {
    throw new RangeError(`readBuffers: size ${size} must be a non-negative multiple of 4`);
  }
  if (offset + size > r.buffer.size) {
    throw new RangeError(
      `readBuffers: bytes ${offset}..${offset + size} lie outside the ${r.buffer.size}-byte ` +
        `buffer${name}`,
    );
  }
  if (size > 0 && (r.buffer.usage & GPUBufferUsage.COPY_SRC) === 0) {
    throw new RangeError(`readBuffers: buffer${name} was created without COPY_SRC usage`);
  }
  return size;
}

/** Reads one buffer as float32 values. */
export async function readF32(gpu: GpuContext, buffer: GPUBuffer, count?: number) {
  const [bytes] = await readBuffers(gpu, [{
    buffer,
    size: count === undefined ? undefined : count * 4,
  }]);
  return new Float32Array(bytes);
}

/** Reads one buffer as uint32 values. */
export async function readU32(gpu: GpuContext, buffer: GPUBuffer, count?: number) {
  const [bytes] = await readBuffers(gpu, [{
    buffer,
    size: count === undefined ? undefined : count * 4,
  }]);
  return new Uint32Array(bytes);
}
