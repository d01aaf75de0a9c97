/**
 * Split-K for products with few output tiles and a long K — above all weight gradients, whose K
 * is the number of tokens (dW[512×1536] = xᵀ·dy over 8,192 tokens is only 48 tiles of 128², a
 * third of an H100's 132 multiprocessors). The vec4 or tiled kernel computes S partial products
 * over slices of K into a scratch buffer; a second kernel sums them into C.
 *
 * @module
 */
import { type BufferSlice, type ComputeBatch, grid } from "../../gpu/batch.ts";
import type { GpuContext } from "../../gpu/device.ts";
import { createTrackedBuffer } from "../../gpu/memory.ts";
import type { Kernel, KernelConstants } from "../../gpu/pipelines.ts";
import { denseStrides, matmulUniform } from "./kernels.ts";
import reduceSource from "../../../kernels/matmul_splitk_reduce.wgsl" with { type: "text" };

/** Shortest K for which splitting is considered. */
export const SPLITK_MIN_K = 1024;
/**
 * Fewest k per split: each slice still streams its whole A and B panels, and the reduction reads
 * S·M·N partials (at most ~(256 + tiles)·16K floats, tens of MB, microseconds on a GPU).
 */
export const SPLITK_MIN_CHUNK = 128;
/** Workgroups a split product aims for: about two per multiprocessor of a 132-SM GPU. */
export const SPLITK_TARGET_WORKGROUPS = 256;
/** Most splits. */
export const SPLITK_MAX = 64;
/**
 * K per slab when every long-K product is cut into slabs, however many tiles it has (0: off, the
 * default). Bench version v11 is v5 with slabs of 512; if the H100 sweep shows it beating v5 on
 * large squares, set this to 512 and `encodeMatmul` does the same for every unbatched product
 * whose K is at least two slabs (as far as the partials fit one binding).
 */
export const SPLITK_SLAB = 0;

const reduceKernel: Kernel = { name: "matmul_splitk_reduce", code: reduceSource };

/** A split of K: `splits` slices of `chunk` k each (the last may be shorter). */
export interface KSplit {
  splits: number;
  chunk: number;
}

/**
 * Splits K into slices that are multiples of 16 (so that every slice starts on a whole vec4 and
 * on a whole step of either tile depth).
 */
export function splitK(K: number, wanted: number): KSplit {
  const chunk = Math.ceil(K / wanted / 16) * 16;
  return { splits: Math.ceil(K / chunk), chunk };
}

/**
 * How many slices an unbatched product of `tiles` output tiles (one workgroup each) should use:
 * 1 (no split) unless K is long and the tiles alone leave most of the GPU idle, or (with `slab` >
 * 0, default {@link SPLITK_SLAB}) K is at least two slabs long.
 */
export function chooseSplits(tiles: number, K: number, slab = SPLITK_SLAB): number {
  const bySlab = slab > 0 && K >= 2 * slab ? Math.min(Math.ceil(K / slab), SPLITK_MAX) : 1;
  if (K < SPLITK_MIN_K) return bySlab < 2 ? 1 : splitK(K, bySlab).splits;
  const s = Math.max(
    bySlab,
    Math.min(
      Math.ceil(SPLITK_TARGET_WORKGROUPS / tiles),
      Math.floor(K / SPLITK_MIN_CHUNK),
      SPLITK_MAX,
    ),
  );
  return s < 2 ? 1 : splitK(K, s).splits;
}

const scratch = new WeakMap<GPUDevice, GPUBuffer>();

// One scratch buffer per device, grown on demand. Every split product recorded anywhere reuses
// it: dispatches run in order (in one pass and across submits), so each reduction has read its
// partials before the next split product overwrites them. A smaller buffer is dropped, not
// destroyed, since a batch recorded but not yet submitted may still refer to it.
function scratchBuffer(gpu: GpuContext, bytes: number): GPUBuffer {
  let buf = scratch.get(gpu.device);
  if (!buf || buf.size < bytes) {
    buf = createTrackedBuffer(gpu.device, {
      label: "jackpot matmul split-K scratch",
      size: Math.max(bytes, 1 << 20),
      usage: GPUBufferUsage.STORAGE,
    });
    scratch.set(gpu.device, buf);
  }
  return buf;
}

/** What {@link encodeSplitK} needs from the caller's plan. */
export interface SplitKJob {
  M: number;
  N: number;
  K: number;
  strideA: number;
  strideB: number;
  /** A stored K×M and B stored N×K (their row strides in the kernel's uniform). */
  transA?: boolean;
  transB?: boolean;
  accumulate: boolean;
  /** The product kernel (never the aliased twin: C is not bound here) and its constants. */
  kernel: Kernel;
  constants: KernelConstants;
  /** The product's workgroup grid for one slice (x, y); the slices run along z. */
  grid: readonly [number, number];
  a: BufferSlice;
  b: BufferSlice;
  c: BufferSlice;
  split: KSplit;
  /** Where the caller takes the partials to sum them itself (see `MatmulParams.splitPartials`). */
  partialsAt?: (splits: number, elements: number) => BufferSlice | null;
}

/**
 * Records the split product into scratch and the reduction into C, or, when `job.partialsAt`
 * gives a place, the product alone into that place.
 */
export function encodeSplitK(batch: ComputeBatch, gpu: GpuContext, job: SplitKJob): void {
  const { M, N, K, split } = job;
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
  const bytes = split.splits * M * N * 4;
  const maxBinding = gpu.limits.maxStorageBufferBindingSize ?? 2 ** 27;
  if (bytes > maxBinding) {
    throw new RangeError(
      `matmul: ${split.splits} split-K partials of ${M}×${N} need ${bytes} bytes, over this ` +
        `device's maxStorageBufferBindingSize of ${maxBinding}`,
    );
  }
  if (split.splits > maxDim) {
    throw new RangeError(`matmul: ${split.splits} splits exceed ${maxDim} workgroups along z`);
  }
  const taken = job.partialsAt?.(split.splits, M * N) ?? null;
  const partials: BufferSlice = taken ??
    { buffer: scratchBuffer(gpu, bytes), offset: 0, size: bytes };
  const params = matmulUniform({
    M,
    N,
    K,
    strideA: job.strideA,
    strideB: job.strideB,
    strideC: M * N,
    batchBase: 0,
    kChunk: split.chunk,
    ...denseStrides(job),
  });
  batch.dispatch({
    kernel: job.kernel,
    constants: { ...job.constants, ACCUMULATE: 0 },
    bindings: [job.a, job.b, partials, params],
    workgroups: [job.grid[0], job.grid[1], split.splits],
  });
  if (taken) return; // the caller sums them into C
  const count = M * N;
  batch.dispatch({
    kernel: reduceKernel,
    constants: { ACCUMULATE: job.accumulate ? 1 : 0 },
    bindings: [partials, job.c, new Uint32Array([count, split.splits])],
    workgroups: grid(Math.ceil(count / 256), maxDim),
  });
}
