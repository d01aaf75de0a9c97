/**
 * Encoding many dispatches into one compute pass and one submit.
 *
 * Each submit and each pass has a fixed cost (a wait for the GPU from JavaScript costs >= ~10 ms in
 * Deno; 2,000 tiny dispatches take ~23 ms in one pass and 70–120 ms with a pass each), so work is
 * recorded into a {@link ComputeBatch} and submitted once. Small uniform parameter blocks are packed
 * into one arena buffer written with a single `writeBuffer` at submit time.
 *
 * @module
 */
import type { GpuContext } from "./device.ts";
import { type Kernel, type KernelConstants, pipelineCache } from "./pipelines.ts";
import { scopedSubmit } from "./errors.ts";
import { bindGroupCache } from "./bind_groups.ts";
import { activeProfiler } from "./profile.ts";
import { createTrackedBuffer } from "./memory.ts";

/** A byte range of a buffer to bind. */
export interface BufferSlice {
  /** The buffer. */
  buffer: GPUBuffer;
  /** Byte offset (a multiple of minStorageBufferOffsetAlignment, usually 256). */
  offset?: number;
  /** Byte size; default to the end of the buffer. */
  size?: number;
}

/**
 * One binding: a storage buffer (whole or a slice), or a typed array of parameters that is packed
 * into the batch's uniform arena and bound as a uniform buffer.
 */
export type Binding = GPUBuffer | BufferSlice | ArrayBufferView;

/** One dispatch of a kernel. */
export interface Dispatch {
  /** The kernel to run. */
  kernel: Kernel;
  /** Values for its `override` constants (each distinct set is a separately compiled pipeline). */
  constants?: KernelConstants;
  /** Entry point; default "main". */
  entryPoint?: string;
  /** Bindings of group 0, the array index being the binding number. */
  bindings: Binding[];
  /** Workgroup counts; see {@link grid} for counts beyond the 65,535 per-dimension limit. */
  workgroups: readonly [number, number?, number?];
}

/** Where to write GPU timestamps around the batch's pass. */
export interface PassTimestamps {
  /** The timestamp query set. */
  querySet: GPUQuerySet;
  /** Index written at the start of the pass. */
  beginIndex: number;
  /** Index written at the end of the pass. */
  endIndex: number;
}

const UNIFORM_ALIGN = 256;
const arenas = new WeakMap<GPUDevice, GPUBuffer>();

function isView(b: Binding): b is ArrayBufferView {
  return ArrayBuffer.isView(b);
}

/**
 * Splits `workgroupCount` into a 2-D grid within the per-dimension limit. Kernels recover the flat
 * workgroup index as `wid.x + wid.y * nwg.x` and must bound-check it.
 */
export function grid(workgroupCount: number, maxPerDim = 65535): [number, number] {
  if (workgroupCount <= maxPerDim) return [Math.max(1, workgroupCount), 1];
  const y = Math.ceil(workgroupCount / maxPerDim);
  return [Math.ceil(workgroupCount / y), y];
}

/**
 * Records dispatches and submits them in one compute pass.
 *
 * @example
 * ```ts
 * const batch = new ComputeBatch(gpu);
 * batch.dispatch({ kernel, bindings: [input, output, new Uint32Array([n])], workgroups: [Math.ceil(n / 256)] });
 * batch.submit();
 * ```
 */
export class ComputeBatch {
  #gpu: GpuContext;
  #dispatches: Dispatch[] = [];
  #copies: Array<[GPUBuffer, number, GPUBuffer, number, number]> = [];
  #submitted = false;

  /** @param gpu the device context to record for. */
  constructor(gpu: GpuContext) {
    this.#gpu = gpu;
  }

  /** Number of dispatches recorded so far. */
  get length(): number {
    return this.#dispatches.length;
  }

  /** Records one dispatch; nothing reaches the GPU before {@link submit}. */
  dispatch(d: Dispatch): this {
    if (this.#submitted) throw new Error("this ComputeBatch was already submitted; make a new one");
    const [x, y = 1, z = 1] = d.workgroups;
    const max = this.#gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
    for (const n of [x, y, z]) {
      if (!Number.isInteger(n) || n < 0 || n > max) {
        throw new RangeError(
          `${d.kernel.name}: workgroup count ${n} is outside 0..${max}; use grid() to split it`,
        );
      }
    }
    const maxUniform = this.#gpu.limits.maxUniformBufferBindingSize ?? 65536;
    d.bindings.forEach((b, i) => {
      if (!isView(b)) return;
      // Caught here because WebGPU would only raise an uncaptured validation error at submit and
      // silently skip every dispatch of the batch.
      if (b.byteLength === 0) {
        throw new RangeError(`${d.kernel.name}: uniform binding ${i} is empty`);
      }
      if (b.byteLength > maxUniform) {
        throw new RangeError(
          `${d.kernel.name}: uniform binding ${i} has ${b.byteLength} bytes, over this device's ` +
            `maxUniformBufferBindingSize of ${maxUniform}`,
        );
      }
    });
    this.#dispatches.push(d);
    return this;
  }

  /** Records a buffer-to-buffer copy, encoded after the compute pass. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): this {
    if (this.#submitted) throw new Error("this ComputeBatch was already submitted; make a new one");
    this.#copies.push([src, srcOffset, dst, dstOffset, size]);
    return this;
  }

  /**
   * Encodes every recorded dispatch into one pass (then the copies) and submits once. With
   * `timestamps`, the pass writes GPU timestamps at its start and end (resolved by `timeBatches` in timing.ts).
   */
  submit(timestamps?: PassTimestamps): void {
    if (this.#submitted) throw new Error("this ComputeBatch was already submitted");
    this.#submitted = true;
    const { device } = this.#gpu;
    // Inside a validation scope: a rejected batch is reported by the next readBuffers (errors.ts)
    // instead of leaving its outputs silently zero.
    scopedSubmit(device, this.#label(), () => {
      const uniformBuffer = this.#writeUniforms();
      const cache = pipelineCache(device);
      const groups = bindGroupCache(device);
      const encoder = device.createCommandEncoder();
      // While a DispatchProfiler runs (profile.ts), each dispatch gets a pass with its own
      // timestamps; otherwise all share one pass.
      const profiler = activeProfiler()?.device === device ? activeProfiler() : undefined;
      if (profiler && timestamps) {
        throw new Error("ComputeBatch: pass timestamps cannot be taken while a profiler runs");
      }
      let pass = profiler ? undefined : encoder.beginComputePass(
        timestamps
          ? {
            timestampWrites: {
              querySet: timestamps.querySet,
              beginningOfPassWriteIndex: timestamps.beginIndex,
              endOfPassWriteIndex: timestamps.endIndex,
            },
          }
          : {},
      );
      let uniformOffset = 0;
      for (const d of this.#dispatches) {
        const pipeline = cache.get(d.kernel, d.constants, d.entryPoint);
        const entries: GPUBindGroupEntry[] = d.bindings.map((b, binding) => {
          if (isView(b)) {
            const size = b.byteLength;
            const entry = {
              binding,
              resource: { buffer: uniformBuffer!, offset: uniformOffset, size },
            };
            uniformOffset += Math.ceil(size / UNIFORM_ALIGN) * UNIFORM_ALIGN;
            return entry;
          }
          if (b instanceof GPUBuffer) return { binding, resource: { buffer: b } };
          return { binding, resource: { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } };
        });
        if (profiler) {
          pass?.end();
          pass = encoder.beginComputePass({ timestampWrites: profiler.slot(d) });
        }
        pass!.setPipeline(pipeline);
        pass!.setBindGroup(0, groups.get(pipeline, entries));
        const [x, y = 1, z = 1] = d.workgroups;
        if (x > 0 && y > 0 && z > 0) pass!.dispatchWorkgroups(x, y, z);
      }
      pass?.end();
      for (const [src, so, dst, doff, size] of this.#copies) {
        encoder.copyBufferToBuffer(src, so, dst, doff, size);
      }
      device.queue.submit([encoder.finish()]);
    });
  }

  // "kernels a, b, c (+n more)": names a rejected batch in the error message.
  #label(): string {
    const names = [...new Set(this.#dispatches.map((d) => d.kernel.name))];
    const shown = names.slice(0, 4).join(", ");
    return names.length > 4 ? `kernels ${shown} (+${names.length - 4} more)` : `kernels ${shown}`;
  }

  // Packs every uniform block into one arena buffer (grown as needed and reused across batches:
  // queue order guarantees the previous batch has consumed it before this writeBuffer lands).
  #writeUniforms(): GPUBuffer | undefined {
    let total = 0;
    for (const d of this.#dispatches) {
      for (const b of d.bindings) {
        if (isView(b)) total += Math.ceil(b.byteLength / UNIFORM_ALIGN) * UNIFORM_ALIGN;
      }
    }
    if (total === 0) return undefined;
    const { device } = this.#gpu;
    let arena = arenas.get(device);
    if (!arena || arena.size < total) {
      arena?.destroy();
      arena = createTrackedBuffer(device, {
        label: "jackpot uniform arena",
        size: Math.max(total, 64 * 1024),
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      arenas.set(device, arena);
    }
    const staging = new Uint8Array(total);
    let offset = 0;
    for (const d of this.#dispatches) {
      for (const b of d.bindings) {
        if (!isView(b)) continue;
        staging.set(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), offset);
        offset += Math.ceil(b.byteLength / UNIFORM_ALIGN) * UNIFORM_ALIGN;
      }
    }
    device.queue.writeBuffer(arena, 0, staging);
    return arena;
  }
}
