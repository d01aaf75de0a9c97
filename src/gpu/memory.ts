/**
 * A ledger of the GPU memory this program holds: every buffer jackpot creates goes through
 * {@linkcode createTrackedBuffer}, which counts its bytes until it is destroyed (or collected), and
 * keeps the peak. WebGPU reports no memory use of its own, and the buffer pool's accounting misses
 * what lives outside it (Jackpot's scratch, readback staging, uniform arenas), so this is how a run
 * shows its footprint and that it does not grow. Driver overhead is not included.
 *
 * @module
 */

/** Memory held on one device, in bytes. */
export interface GpuMemoryStats {
  /** Bytes in buffers created and not yet destroyed. */
  liveBytes: number;
  /** The most `liveBytes` has been since the device was created or {@linkcode resetGpuMemoryPeak}. */
  peakBytes: number;
  /** Buffers created and not yet destroyed. */
  liveBuffers: number;
  /** Buffers ever created on the device. */
  createdBuffers: number;
}

class Ledger {
  liveBytes = 0;
  peakBytes = 0;
  liveBuffers = 0;
  createdBuffers = 0;

  add(bytes: number): void {
    this.liveBytes += bytes;
    this.liveBuffers++;
    this.createdBuffers++;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
  }

  remove(bytes: number): void {
    this.liveBytes -= bytes;
    this.liveBuffers--;
  }
}

const ledgers = new WeakMap<GPUDevice, Ledger>();

function ledgerOf(device: GPUDevice): Ledger {
  let ledger = ledgers.get(device);
  if (!ledger) ledgers.set(device, ledger = new Ledger());
  return ledger;
}

// One entry per tracked buffer, shared by its destroy wrapper and the finalizer, so that a buffer
// is taken off the ledger once, whichever comes first.
interface Entry {
  ledger: Ledger;
  bytes: number;
  counted: boolean;
}

function release(entry: Entry): void {
  if (!entry.counted) return;
  entry.counted = false;
  entry.ledger.remove(entry.bytes);
}

// A buffer dropped without destroy() is freed when collected; the ledger follows.
const collected = new FinalizationRegistry<Entry>(release);

/**
 * `device.createBuffer(descriptor)`, counted on the device's ledger until its `destroy()` (called
 * any number of times) or its collection.
 *
 * @example
 * ```ts
 * const b = createTrackedBuffer(gpu.device, { size: 1024, usage: GPUBufferUsage.STORAGE });
 * gpuMemory(gpu.device).liveBytes; // includes 1024
 * b.destroy();
 * ```
 */
export function createTrackedBuffer(device: GPUDevice, descriptor: GPUBufferDescriptor): GPUBuffer {
  const buffer = device.createBuffer(descriptor);
  const entry: Entry = { ledger: ledgerOf(device), bytes: buffer.size, counted: true };
  entry.ledger.add(entry.bytes);
  const destroy = buffer.destroy.bind(buffer);
  // An own property shadows the prototype's method: the buffer still is a plain GPUBuffer.
  Object.defineProperty(buffer, "destroy", {
    configurable: true,
    value: () => {
      release(entry);
      collected.unregister(entry);
      destroy();
    },
  });
  collected.register(buffer, entry, entry);
  return buffer;
}

/**
 * The device's ledger now.
 *
 * @example
 * ```ts
 * const { liveBytes, peakBytes } = gpuMemory(gpu.device);
 * ```
 */
export function gpuMemory(device: GPUDevice): GpuMemoryStats {
  const { liveBytes, peakBytes, liveBuffers, createdBuffers } = ledgerOf(device);
  return { liveBytes, peakBytes, liveBuffers, createdBuffers };
}

/**
 * Starts a new peak at the current live bytes (e.g. at the start of each training iteration, so
 * the peak logged is that iteration's).
 */
export function resetGpuMemoryPeak(device: GPUDevice): void {
  const ledger = ledgerOf(device);
  ledger.peakBytes = ledger.liveBytes;
}
