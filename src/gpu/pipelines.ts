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
  #modules = new Map<string, GPUShaderModule>();
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
    const constKey = Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`).join(",");
    const key = `${kernel.name}#${entryPoint}#${constKey}`;
    let pipeline = this.#pipelines.get(key);
    if (pipeline) return pipeline;
    let module = this.#modules.get(kernel.name);
    if (!module) {
      module = this.#device.createShaderModule({ code: kernel.code, label: kernel.name });
      this.#modules.set(kernel.name, module);
    }
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
