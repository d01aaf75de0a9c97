/**
 * The matmul kernels, imported as text so `deno compile` embeds them. Each kernel also exists as
 * an "aliased" twin that declares A and B `read_write`: WebGPU forbids one buffer being bound both
 * read-only and writable in the same dispatch, so when C shares a buffer with A or B (disjoint
 * ranges of one arena) every binding must be writable. The vec4 kernel also has an unpadded twin
 * (its workgroup array sizes cannot be overrides in every dimension, so the pad is in the text),
 * and a looped form (matmul_vec4_loop.wgsl) kept selectable until measured against it on an H100.
 *
 * @module
 */
import type { Kernel } from "../../gpu/pipelines.ts";
import naiveSource from "../../../kernels/matmul_naive.wgsl" with { type: "text" };
import tiledSource from "../../../kernels/matmul_tiled.wgsl" with { type: "text" };
import vec4Source from "../../../kernels/matmul_vec4.wgsl" with { type: "text" };
import vec4LoopSource from "../../../kernels/matmul_vec4_loop.wgsl" with { type: "text" };
import skinnySource from "../../../kernels/matmul_skinny.wgsl" with { type: "text" };
import skinnyVec4Prelude from "../../../kernels/matmul_skinny_vec4.wgsl" with { type: "text" };
import skinnyScalarPrelude from "../../../kernels/matmul_skinny_scalar.wgsl" with { type: "text" };
import skinnySwigluPrologue from "../../../kernels/matmul_skinny_swiglu.wgsl" with { type: "text" };
import skinnyAddRmsPrologue from "../../../kernels/matmul_skinny_add_rms.wgsl" with {
  type: "text",
};

/**
 * The kernel variants `encodeMatmul` picks from by shape and alignment:
 * - `naive`: one invocation per output (the baseline; any shape);
 * - `tiled`: 64×64 tiles, 4×4 per invocation, scalar loads (any shape and alignment);
 * - `vec4`: 128×128 tiles, 8×8 per invocation, vec4 loads (rows a multiple of 4 floats);
 * - `skinny`: M ≤ 64 rows, all of them per workgroup, 4–32 columns, K split among the invocations
 *   (decode steps; unbatched, A not transposed; src/tensor/matmul/skinny.ts); it alone can read A
 *   through a prologue ({@link KernelForm.prologue}).
 */
export type MatmulVariant = "naive" | "tiled" | "vec4" | "skinny";

/**
 * Output tile of each variant's workgroup (rows, columns); the skinny kernel's is the most it
 * covers (its columns, 4 to 32, are chosen by shape: `chooseSkinnyTiling`).
 */
export const MATMUL_TILES: Record<MatmulVariant, readonly [number, number]> = {
  naive: [16, 16],
  tiled: [64, 64],
  vec4: [128, 128],
  skinny: [64, 32],
};

// The skinny kernel's source is its body after a prelude (bindings and loads) chosen by `scalar`.
const SOURCES: Record<Exclude<MatmulVariant, "skinny">, string> = {
  naive: naiveSource,
  tiled: tiledSource,
  vec4: vec4Source,
};

// The line of matmul_vec4.wgsl that sets the padded tile pitch; its unpadded twin rewrites it.
const PITCH_LINE = "const PITCH = 33u;";

/** How a variant's source is specialised beyond its `override` constants. */
export interface KernelForm {
  /** C shares a buffer with A or B: declare every binding `read_write`. */
  aliased?: boolean;
  /** vec4 only: tile rows padded by one vec4 (1, the default) or not (0). */
  pad?: number;
  /** vec4 only: the hand-unrolled kernel (true, the default) or the looped one. */
  unrolled?: boolean;
  /** skinny only: scalar loads, for any alignment (false, the default: vec4 loads). */
  scalar?: boolean;
  /**
   * skinny only: read A through a prologue. "swiglu": the stored A is a joined gate/up projection
   * [M, 2K] and the kernel multiplies silu(gate) · up (kernels/matmul_skinny_swiglu.wgsl).
   * "addRms": the stored A is a residual stream x [M, K], and the kernel multiplies
   * rmsNorm(x + r) · g, writing x + r out (kernels/matmul_skinny_add_rms.wgsl).
   */
  prologue?: MatmulPrologue;
}

/**
 * How the skinny kernel may read A (see {@link KernelForm.prologue}): through SwiGLU's gate, or
 * through a residual add and an RMSNorm.
 */
export type MatmulPrologue = "swiglu" | "addRms";

// The prelude's A loader, renamed when a prologue wraps it.
const LOAD_A = "fn load4A(";

// The body's hook comments and what the add-RMS prologue replaces them with (other forms keep the
// comments, so their code is unchanged).
const HOOKS: ReadonlyArray<[string, string]> = [
  [
    "// hook: step (the add-RMS prologue's addRmsStep; a comment in every other form)",
    "addRmsStep(&cur, m, rows, k, kHi, wid.x == 0u && g == 0u);",
  ],
  [
    "// hook: scale (the add-RMS prologue's addRmsScale; a comment in every other form)",
    "addRmsScale(s, g, r, &acc0, &acc1, &acc2, &acc3, &acc4, &acc5, &acc6, &acc7);",
  ],
];

const PROLOGUES: Record<MatmulPrologue, string> = {
  swiglu: skinnySwigluPrologue,
  addRms: skinnyAddRmsPrologue,
};

// Replaces `from` (which must occur exactly once) with `to`.
function replaceOnce(text: string, from: string, to: string, where: string): string {
  if (text.split(from).length !== 2) {
    throw new Error(`${where} must contain "${from}" exactly once`);
  }
  return text.replace(from, to);
}

// The skinny kernel's text: prelude (bindings and loads), maybe the A prologue, then the body.
function skinnyCode(form: KernelForm): string {
  const prelude = form.scalar ? skinnyScalarPrelude : skinnyVec4Prelude;
  if (form.prologue === undefined) return prelude + skinnySource;
  if (!Object.hasOwn(PROLOGUES, form.prologue)) {
    throw new RangeError(`matmul: unknown A prologue ${String(form.prologue)}`);
  }
  const prologue = PROLOGUES[form.prologue];
  let body = skinnySource;
  if (form.prologue === "addRms") {
    for (const [hook, call] of HOOKS) body = replaceOnce(body, hook, call, "matmul_skinny.wgsl");
  }
  return replaceOnce(prelude, LOAD_A, "fn load4X(", "the skinny prelude") + prologue + body;
}

const kernels = new Map<string, Kernel>();

/**
 * The kernel of `variant` in `form`, created once (the pipeline cache keys on its name).
 *
 * @example
 * ```ts
 * const k = matmulKernel("vec4", { aliased: true, pad: 0 }); // name "matmul_vec4+aliased+pad0"
 * ```
 */
export function matmulKernel(variant: MatmulVariant, form: KernelForm = {}): Kernel {
  const looped = variant === "vec4" && form.unrolled === false;
  const skinny = variant === "skinny";
  if (form.prologue !== undefined && !skinny) {
    throw new RangeError(
      `matmul: only the skinny kernel reads A through a prologue, not ${variant}`,
    );
  }
  // The looped kernel takes its pad as an override constant; the unrolled one in its text.
  const unpadded = variant === "vec4" && !looped && form.pad === 0;
  const name =
    `matmul_${variant}${looped ? "_loop" : ""}${skinny && form.scalar ? "_scalar" : ""}` +
    `${skinny && form.prologue ? `_${form.prologue}` : ""}` +
    `${form.aliased ? "+aliased" : ""}${unpadded ? "+pad0" : ""}`;
  let kernel = kernels.get(name);
  if (kernel) return kernel;
  // Built once per form, after the lookup: this runs for every matmul a step records, and
  // assembling the skinny text (its hook replacements) cost the host ~6% of a decode step.
  const source = skinny ? skinnyCode(form) : looped ? vec4LoopSource : SOURCES[variant];
  if (source === undefined) throw new RangeError(`matmul: unknown variant ${String(variant)}`);
  let code = source;
  if (form.aliased) code = code.replaceAll("var<storage, read>", "var<storage, read_write>");
  if (unpadded) {
    if (code.split(PITCH_LINE).length !== 2) {
      throw new Error(`matmul_vec4.wgsl must contain "${PITCH_LINE}" exactly once`);
    }
    code = code.replace(PITCH_LINE, "const PITCH = 32u;");
  }
  kernel = { name, code };
  kernels.set(name, kernel);
  return kernel;
}

/** The fields of the matmul kernels' `Params` uniform (kernels/matmul_*.wgsl, in this order). */
export interface MatmulUniform {
  M: number;
  N: number;
  K: number;
  strideA: number;
  strideB: number;
  strideC: number;
  batchBase: number;
  kChunk: number;
  /** Row stride of the stored A (K, or M when transposed; the tiled kernel reads it). */
  ldA: number;
  /** Row stride of the stored B (N, or K when transposed; the tiled and skinny kernels). */
  ldB: number;
  /** Row stride of C (N; the tiled and skinny kernels). */
  ldC: number;
}

/**
 * The matmul kernels' parameters as the uniform they bind: 12 words (the naive and vec4 kernels
 * read the first 8; the row strides are dense except for a block of a split product,
 * src/tensor/matmul/blocked.ts).
 *
 * @example
 * ```ts
 * matmulUniform({ M, N, K, strideA: M * K, strideB: K * N, strideC: M * N, batchBase: 0,
 *   kChunk: 0, ldA: K, ldB: N, ldC: N });
 * ```
 */
export function matmulUniform(u: MatmulUniform): Uint32Array {
  return new Uint32Array([
    u.M,
    u.N,
    u.K,
    u.strideA,
    u.strideB,
    u.strideC,
    u.batchBase,
    u.kChunk,
    u.ldA,
    u.ldB,
    u.ldC,
    0,
  ]);
}

/** The dense row strides of a product's stored A, B and C (`ldA`, `ldB`, `ldC` of the uniform). */
export function denseStrides(
  s: { M: number; N: number; K: number; transA?: boolean; transB?: boolean },
): { ldA: number; ldB: number; ldC: number } {
  return { ldA: s.transA ? s.M : s.K, ldB: s.transB ? s.K : s.N, ldC: s.N };
}
