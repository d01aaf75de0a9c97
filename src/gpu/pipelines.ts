/**
 * Compute pipelines, compiled once per (kernel, entry point, override constants) and cached.
 * Compiling a WGSL module takes milliseconds to seconds; doing it per call would dominate every
 * small kernel, so nothing outside this cache creates pipelines.
 *
 * @module
 */

/** A WGSL kernel: its source text (imported with `with { type: "text" }`) and a stable name. */
export interface Kernel {
  /** Unique name, used as the cache key and in error messages. */
  name: string;
  /** WGSL source. */
  code: string;
}

/** Values for the kernel's `override` declarations. */
export type KernelConstants = Record<string, number>;

/** A compiled pipeline cache bound to one device. */
export class PipelineCache {
  #device: GPUDevice;
  #modules = new Map<string, { code: string; module: GPUShaderModule }>();
  #pipelines = new Map<string, GPUComputePipeline>();

  /** @param device the device every pipeline is compiled for. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Number of distinct pipelines compiled so far (tests use it to prove reuse). */
  get size(): number {
    return this.#pipelines.size;
  }

  /**
   * The pipeline for `kernel` with `constants` at `entryPoint`, compiled on first request.
   *
   * @example
   * ```ts
   * const pipeline = cache.get(copyKernel, { WG: 256 });
   * ```
   */
  get(kernel: Kernel, constants: KernelConstants = {}, entryPoint = "main"): GPUComputePipeline {
    let compiled = this.#modules.get(kernel.name);
    if (!compiled) {
      const module = this.#device.createShaderModule({ code: kernel.code, label: kernel.name });
      compiled = { code: kernel.code, module };
      this.#modules.set(kernel.name, compiled);
    } else if (compiled.code !== kernel.code) {
      // Names are the cache key: a second source under the same name would silently run the
      // first one's pipeline. (The same string object compares in O(1), so this costs nothing.)
      throw new Error(
        `two kernels are named '${kernel.name}' with different code; name each variant`,
      );
    }
    // Runs once per dispatch: plain concatenation, and a sort only when there is anything to sort.
    const names = Object.keys(constants);
    if (names.length > 1) names.sort();
    let key = kernel.name + "#" + entryPoint + "#";
    for (let i = 0; i < names.length; i++) {
      key += (i > 0 ? "," : "") + names[i] + "=" + constants[names[i]];
    }
    let pipeline = this.#pipelines.get(key);
    if (pipeline) return pipeline;
    const module = compiled.module;
    pipeline = this.#device.createComputePipeline({
      label: key,
      layout: "auto",
      compute: { module, entryPoint, constants },
    });
    this.#pipelines.set(key, pipeline);
    return pipeline;
  }
}

const caches = new WeakMap<GPUDevice, PipelineCache>();

/** The cache of a device (one per device, created on first use). */
export function pipelineCache(device: GPUDevice): PipelineCache {
  let cache = caches.get(device);
  if (!cache) {
    cache = new PipelineCache(device);
    caches.set(device, cache);
  }
  return cache;
}
