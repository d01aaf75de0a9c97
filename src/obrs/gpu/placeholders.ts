/**
 * Small helpers the OBRS recorders share: uniform parameter blocks and placeholder buffers for
 * optional bindings.
 *
 * @module
 */
import type { GpuContext } from "../../gpu/device.ts";
import { createStorageBuffer } from "../../gpu/buffers.ts";

/** A uniform block of u32 parameters. */
export function u32s(...values: number[]): Uint32Array {
  return new Uint32Array(values);
}

/**
 * A 16-byte placeholder for an optional binding. Distinct slots, so that one dispatch never binds
 * the same buffer as both read-only and writable storage.
 *
 * @example
 * ```ts
 * bindings: [logits, tokens ?? dummy(gpu, 0), out, vec4 ? logits : dummy(gpu, 2)]
 * ```
 */
export function dummy(gpu: GpuContext, slot = 0): GPUBuffer {
  let list = dummies.get(gpu.device);
  if (!list) dummies.set(gpu.device, list = []);
  list[slot] ??= createStorageBuffer(gpu, 16, `obrs placeholder ${slot}`);
  return list[slot];
}
const dummies = new WeakMap<GPUDevice, GPUBuffer[]>();
