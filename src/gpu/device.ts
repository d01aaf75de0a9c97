/**
 * Acquiring the WebGPU device: the adapter's real limits and optional features are requested
 * explicitly (the defaults are far lower: 128 MiB bindings instead of ~2 GiB on an H100).
 *
 * @module
 */

/** No usable WebGPU adapter: the message is one sentence a user can act on. */
export class GpuUnavailableError extends Error {
  /** @param message what is missing and what to do. */
  constructor(message: string) {
    super(message);
    this.name = "GpuUnavailableError";
  }
}

/** Optional features jackpot uses when the adapter has them. */
export const OPTIONAL_FEATURES = ["shader-f16", "timestamp-query"] as const;

/** Everything the rest of the library needs to know about the device it runs on. */
export interface GpuContext {
  /** The device, created with the adapter's full limits and the optional features it has. */
  device: GPUDevice;
  /** Adapter description as the driver reports it. */
  adapter: { vendor: string; architecture: string; device: string; description: string };
  /** True for a software (CPU) adapter such as Mesa llvmpipe/lavapipe. */
  isFallback: boolean;
  /** Features enabled on the device. */
  features: string[];
  /** The limits the device was created with (equal to the adapter's). */
  limits: Record<string, number>;
  /** `timestamp-query` is enabled: kernels can be timed on the GPU. */
  hasTimestamps: boolean;
  /** `shader-f16` is enabled. */
  hasF16: boolean;
}

/** Options for {@link createGpu}. */
export interface GpuOptions {
  /** Passed to `requestAdapter`; default "high-performance". */
  powerPreference?: GPUPowerPreference;
  /** Ask for a fallback (CPU) adapter even when a hardware one exists; default false. */
  forceFallback?: boolean;
  /**
   * The WebGPU entry point; default `navigator.gpu`. `null` stands for a runtime without WebGPU
   * (tests use it, as would a port to a runtime whose WebGPU lives elsewhere).
   */
  provider?: GPU | null;
}

// The runtime seam: Deno (and browsers) expose `navigator.gpu`; a Bun port would swap this function.
function webgpu(): GPU | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu;
}

function limitsOf(limits: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  // GPUSupportedLimits exposes its members as prototype getters, so enumerate the prototype chain.
  for (let o: object | null = limits; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const key of Object.getOwnPropertyNames(o)) {
      if (key === "constructor" || key in out) continue;
      const value = (limits as unknown as Record<string, unknown>)[key];
      if (typeof value === "number") out[key] = value;
    }
  }
  return out;
}

/**
 * Creates a new device on the best adapter. Throws {@link GpuUnavailableError} when the runtime has
 * no WebGPU or no adapter at all.
 *
 * @example
 * ```ts
 * const gpu = await createGpu();
 * console.log(gpu.adapter.description, gpu.isFallback);
 * ```
 */
export async function createGpu(options: GpuOptions = {}): Promise<GpuContext> {
  const gpu = options.provider === undefined ? webgpu() : options.provider;
  if (!gpu) {
    throw new GpuUnavailableError(
      "This runtime has no WebGPU (navigator.gpu is missing); run jackpot with Deno 2.x.",
    );
  }
  const adapter = await gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
    forceFallbackAdapter: options.forceFallback ?? false,
  });
  if (!adapter) {
    throw new GpuUnavailableError(
      "No WebGPU adapter was found: install a Vulkan driver (on a machine without a GPU, Mesa's " +
        "llvmpipe/lavapipe from the Debian package mesa-vulkan-drivers).",
    );
  }
  const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits = limitsOf(adapter.limits);
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  device.lost.then((info) => {
    // A lost device cannot be recovered inside a run; say so once instead of failing later with
    // an opaque validation error on the next dispatch.
    if (info.reason !== "destroyed") console.error(`jackpot: GPU device lost: ${info.message}`);
  });
  const info = adapter.info;
  return {
    device,
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
    },
    isFallback: (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
    features: [...device.features].sort(),
    limits: limitsOf(device.limits),
    hasTimestamps: device.features.has("timestamp-query"),
    hasF16: device.features.has("shader-f16"),
  };
}

let shared: Promise<GpuContext> | undefined;

/**
 * The process-wide device, created on first use. Library calls default to it so that a notebook
 * or a CLI command shares one device (and one pipeline cache) across everything it runs.
 */
export function getGpu(): Promise<GpuContext> {
  if (!shared) {
    const attempt = createGpu();
    shared = attempt;
    // A failed attempt must not be cached: the next call should try again and say why. Nor
    // must a lost device: the next call gets a new one.
    attempt.then(
      (gpu) =>
        gpu.device.lost.then(() => {
          if (shared === attempt) shared = undefined;
        }),
      () => {
        if (shared === attempt) shared = undefined;
      },
    );
  }
  return shared;
}
