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

/** The kernel variants {@link encodeMatmul} picks from by shape and alignment. */
export type MatmulVariant = "naive";

function withAliasedTwin(name: string, code: string): { plain: Kernel; aliased: Kernel } {
  const aliasedCode = code.replaceAll("var<storage, read>", "var<storage, read_write>");
  return { plain: { name, code }, aliased: { name: `${name}+aliased`, code: aliasedCode } };
}

/** Kernel sources per variant, plain and aliased. */
export const MATMUL_KERNELS: Record<MatmulVariant, { plain: Kernel; aliased: Kernel }> = {
  naive: withAliasedTwin("matmul_naive", naiveSource),
};
