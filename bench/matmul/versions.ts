/**
 * The numbered matmul kernel versions, llm.c style: each says what changed from the one before and
 * how fast it ran. The promoted kernels live in kernels/ and run through `encodeMatmul`; a version
 * that only survives as history keeps its WGSL in this folder.
 *
 * Figures: "llvmpipe" is the CPU fallback adapter (Mesa llvmpipe, 2 shared cores) measured with
 * `deno run -A bench/matmul/main.ts --small`; it says nothing about GPU speed, only that the
 * version runs. H100 figures come from `deno run -A bench/matmul/main.ts` on the device host.
 *
 * @module
 */
import type { ComputeBatch } from "../../src/gpu/batch.ts";
import type { GpuContext } from "../../src/gpu/device.ts";
import type { Kernel } from "../../src/gpu/pipelines.ts";
import {
  chooseMatmulVariant,
  DEFAULT_VEC4_TUNING,
  encodeMatmul,
  type MatmulParams,
  planMatmul,
  skinnyObstacle,
  type SkinnyOverride,
  vec4Obstacle,
  type Vec4Tuning,
  vec4WorkgroupBytes,
} from "../../src/tensor/matmul/mod.ts";
import v3Source from "./v3_vec4_single.wgsl" with { type: "text" };

/** One numbered kernel version. */
export interface MatmulVersion {
  /** "v1", "v2", ... */
  id: string;
  /** What it is and what changed from the previous version. */
  note: string;
  /** A history version, left out of the default run (`--all` or `--versions` runs it). */
  history?: boolean;
  /**
   * A few-row (decode) version: left out of the default run on the general shapes, where it
   * cannot run (`--decode` runs it; so do `--all` and `--versions`).
   */
  decode?: boolean;
  /** Why it cannot run `p` on this device, or undefined when it can. */
  obstacle(gpu: GpuContext, p: MatmulParams): string | undefined;
  /** Records one product. */
  encode(batch: ComputeBatch, gpu: GpuContext, p: MatmulParams): void;
}

const v3Kernel: Kernel = { name: "matmul_bench_v3", code: v3Source };

function params(p: MatmulParams): Uint32Array {
  return new Uint32Array([p.M, p.N, p.K, 0, 0, 0, 0, 0]);
}

// A forced split of K: a number, or one chosen from the product and the device (undefined:
// encodeMatmul's own).
type SplitRule = number | ((p: MatmulParams, gpu: GpuContext) => number);

function vec4Version(
  id: string,
  note: string,
  tuning: Partial<Vec4Tuning>,
  split?: SplitRule,
): MatmulVersion {
  const splitOf = (p: MatmulParams, gpu: GpuContext) =>
    typeof split === "function" ? split(p, gpu) : split;
  return {
    id,
    note,
    obstacle(gpu, p) {
      const need = vec4WorkgroupBytes({ ...DEFAULT_VEC4_TUNING, ...tuning });
      const have = gpu.limits.maxComputeWorkgroupStorageSize ?? 16384;
      if (need > have) return `needs ${need} B of workgroup memory, device has ${have}`;
      const plan = planMatmul(gpu, p);
      const s = splitOf(p, gpu) ?? 1;
      if (s > 1 && plan.batchCount > 1) return "forced split-K needs batchCount 1";
      const scratch = s * plan.M * plan.N * 4;
      const maxBinding = gpu.limits.maxStorageBufferBindingSize ?? 2 ** 27;
      if (s > 1 && scratch > maxBinding) {
        return `${s} split-K partials need ${scratch} B, over one binding (${maxBinding})`;
      }
      return vec4Obstacle(plan);
    },
    encode: (batch, gpu, p) =>
      encodeMatmul(batch, gpu, {
        ...p,
        variant: "vec4",
        vec4Tuning: tuning,
        splitK: splitOf(p, gpu),
      }),
  };
}

/** The k per slab of v11: K is cut into slices this long (split-K), whatever the tile count. */
export const V11_SLAB = 512;

// v11's split: slabs of V11_SLAB, as many as the partials fit one binding (what SPLITK_SLAB = 512
// would make encodeMatmul do; 4096² partials take 64 MiB each, so a 128 MiB binding holds 2).
function slabSplits(p: MatmulParams, gpu: GpuContext): number {
  const maxBinding = gpu.limits.maxStorageBufferBindingSize ?? 2 ** 27;
  const fit = Math.max(1, Math.floor(maxBinding / (p.M * p.N * 4)));
  return Math.max(1, Math.min(Math.ceil(p.K / V11_SLAB), fit));
}

// A skinny-kernel version (kernels/matmul_skinny.wgsl, M ≤ 64): its tiling chosen by shape, or
// parts of it forced (K slices go through `splitK`, as encodeMatmul takes them).
function skinnyVersion(id: string, note: string, force: SkinnyOverride = {}): MatmulVersion {
  return {
    id,
    note,
    decode: true,
    obstacle: (gpu, p) => skinnyObstacle(planMatmul(gpu, p)),
    encode: (batch, gpu, p) =>
      encodeMatmul(batch, gpu, {
        ...p,
        variant: "skinny",
        skinnyTiling: { colGroups: force.colGroups, prefetch: force.prefetch },
        splitK: force.kSplits,
      }),
  };
}

/** Every version, oldest first. */
export const MATMUL_VERSIONS: MatmulVersion[] = [
  {
    id: "v1",
    history: true,
    // llvmpipe 128³ / 256³ / 512³: see the report table in bench/matmul/README.md.
    note: "naive: one invocation per output, K serial loads of A and B (kernels/matmul_naive.wgsl)",
    obstacle: () => undefined,
    encode: (batch, gpu, p) => encodeMatmul(batch, gpu, { ...p, variant: "naive" }),
  },
  {
    id: "v2",
    note: "64×64 tiles through workgroup memory, 4×4 outputs per invocation in vec4 accumulator " +
      "variables, scalar loads, double-buffered (kernels/matmul_tiled.wgsl; the any-shape path)",
    obstacle: () => undefined,
    encode: (batch, gpu, p) => encodeMatmul(batch, gpu, { ...p, variant: "tiled" }),
  },
  {
    id: "v3",
    history: true,
    note: "128×128×8 tiles, 8×8 outputs per invocation in 16 vec4 variables, vec4 global loads; " +
      "one buffer, two barriers per step, row-major tile order (bench/matmul/v3_vec4_single.wgsl)",
    obstacle(gpu, p) {
      const plan = planMatmul(gpu, p);
      if (plan.transA || plan.transB || plan.accumulate || plan.batchCount > 1) {
        return "history version: plain A·B only";
      }
      return vec4Obstacle(plan);
    },
    encode(batch, _gpu, p) {
      batch.dispatch({
        kernel: v3Kernel,
        bindings: [p.a, p.b, p.c, params(p)],
        workgroups: [Math.ceil(p.N / 128), Math.ceil(p.M / 128)],
      });
    },
  },
  vec4Version(
    "v4",
    "v3 + second workgroup buffer with the next step's loads prefetched into registers (one " +
      "barrier per step) + tiles walked in groups of 8 rows for L2 reuse; all transposes, " +
      "batches, accumulate (kernels/matmul_vec4_loop.wgsl, selectable as unrolled: false)",
    { unrolled: false },
  ),
  vec4Version(
    "v5",
    "v4 rewritten for naga: k loop unrolled by hand, two steps per trip of the main loop, tiles " +
      "as [k][column] arrays, so no tile read pays a clamp or an add (naga clamps every dynamic " +
      "index and counts every loop); accumulators as private variables; batches, accumulate " +
      "(kernels/matmul_vec4.wgsl: the default for large aligned products)",
    {},
  ),
  vec4Version("v6", "v5 with BK = 16: half the barriers, twice the workgroup memory (34 KB)", {
    BK: 16,
    PAD: 1,
  }),
  vec4Version("v7", "v5 with BK = 16 and unpadded tiles (32 KiB; bank conflicts on the scatter)", {
    BK: 16,
    PAD: 0,
  }),
  vec4Version("v8", "v5 with GROUP_M = 1 (row-major tile order): what the grouping buys", {
    GROUP_M: 1,
  }),
  vec4Version(
    "v9",
    "v5 without split-K (splitK: 1): what splitting a long K buys when tiles are few",
    {},
    1,
  ),
  // v10–v13 test the suspects for v5's fall from ~39 TFLOP/s at K = 512 to ~7 at K ≥ 2048 in the
  // first H100 sweep (which was partly an artefact of the bench's order; see main.ts).
  vec4Version(
    "v10",
    "v5 with STAGGER = 8: each of 8 consecutive workgroups starts its k loop 1/8 of K further " +
      "on (wrapping round), so they stop reading the same K offset of A and B at once: the fix " +
      "if power-of-two row strides (8, 16 KiB) camp on DRAM partitions / L2 sets",
    { STAGGER: 8 },
  ),
  vec4Version(
    "v11",
    `v5 with K cut into slabs of ${V11_SLAB} by split-K (partials + a sum) whatever the tile ` +
      "count (fewer, longer slabs where the partials would overflow one binding): the fix if a " +
      "workgroup's long K (not the product's size) is what slows it",
    {},
    slabSplits,
  ),
  vec4Version("v12", "v6 (BK = 16, 34 KB) with STAGGER = 8: the two changes together", {
    BK: 16,
    PAD: 1,
    STAGGER: 8,
  }),
  vec4Version(
    "v13",
    "v5 with GROUP_M = 16: a wave of ~264 workgroups spans 16×16 tiles (at 4096³ 64 MiB of A and " +
      "B panels) instead of 8×33 (80 MiB): the fix if the wave's panels overflow the 50 MB L2",
    { GROUP_M: 16 },
  ),
  skinnyVersion(
    "v14",
    "few rows (M ≤ 64, decode steps): each workgroup owns all rows and 4–32 columns, its 256 " +
      "invocations split K (coalesced vec4 loads along k, next step's loads in flight, no " +
      "barrier in the k loop) and sum by a fixed tree; tiling and split-K across workgroups " +
      "by a cost model (kernels/matmul_skinny.wgsl; the default for M ≤ SKINNY_MAX_M)",
  ),
  skinnyVersion("v15", "v14 without split-K across workgroups (one dispatch)", { kSplits: 1 }),
  skinnyVersion("v16", "v14 with 4 columns per workgroup (most workgroups, most A rereads)", {
    colGroups: 1,
  }),
  skinnyVersion("v17", "v14 with 32 columns per workgroup (fewest A rereads)", { colGroups: 8 }),
  skinnyVersion(
    "v18",
    "v14 without the register prefetch (each step's loads after the previous step's FMAs): " +
      "12 fewer vec4 registers, so perhaps two workgroups per SM instead of one",
    { prefetch: false },
  ),
  {
    id: "tiles",
    decode: true,
    note: "what encodeMatmul picks with the skinny kernel off (SKINNY_MAX_M = 0): tiled, or vec4 " +
      "with split-K; the decode figure before v14",
    obstacle: () => undefined,
    encode: (batch, gpu, p) =>
      encodeMatmul(batch, gpu, { ...p, variant: chooseMatmulVariant(planMatmul(gpu, p), 0) }),
  },
  {
    id: "auto",
    note: "whatever encodeMatmul picks for the shape (the figure the library delivers)",
    obstacle: () => undefined,
    encode: (batch, gpu, p) => encodeMatmul(batch, gpu, p),
  },
];
