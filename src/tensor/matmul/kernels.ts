/**
 * The matmul kernels, imported as text so `deno compile` embeds them. Each kernel also exists as
 * an "aliased" twin that declares A and B `read_write`: WebGPU forbids one buffer being bound both
 * read-only and writable in the same dispatch, so when C shares a buffer with A or B (disjoint
 * ranges of one arena) every binding must be writable.
 *
 * @module
 */
import type { Kernel } from "../../gpu/pipelines.ts";
import naiveSource from "../../../kernels/matmul_naive.wgsl" with { type: "text" };
import tiledSource from "../../../kernels/matmul_tiled.wgsl" with { type: "text" };
import vec4Source from "../../../kernels/matmul_vec4.wgsl" with { type: "text" };

/**
 * The kernel variants `encodeMatmul` picks from by shape and alignment:
 * - `naive`: one invocation per output (the baseline; any shape);
 * - `tiled`: 64×64 tiles, 4×4 per invocation, scalar loads (any shape and alignment);
 * - `vec4`: 128×128 tiles, 8×8 per invocation, vec4 loads (rows a multiple of 4 floats).
 */
export type MatmulVariant = "naive" | "tiled" | "vec4";

/** Output tile of each variant's workgroup (rows, columns). */
export const MATMUL_TILES: Record<MatmulVariant, readonly [number, number]> = {
  naive: [16, 16],
  tiled: [64, 64],
  vec4: [128, 128],
};

function withAliasedTwin(name: string, code: string): { plain: Kernel; aliased: Kernel } {
  const aliasedCode = code.replaceAll("var<storage, read>", "var<storage, read_write>");
  return { plain: { name, code }, aliased: { name: `${name}+aliased`, code: aliasedCode } };
}

/** Kernel sources per variant, plain and aliased. */
export const MATMUL_KERNELS: Record<MatmulVariant, { plain: Kernel; aliased: Kernel }> = {
  naive: withAliasedTwin("matmul_naive", naiveSource),
  tiled: withAliasedTwin("matmul_tiled", tiledSource),
  vec4: withAliasedTwin("matmul_vec4", vec4Source),
};
