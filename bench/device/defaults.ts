/**
 * The library defaults the verdict rules may change, as they stand in the source now, so that each
 * edit reads "old → new" with the value actually in the file. Exported constants are imported; the
 * few that are not exported are read from the source text (undefined when the text has moved on,
 * and the edit then says "?").
 *
 * @module
 */
import { ADD_RMS_FUSED_MAX_K } from "../../src/autograd/add_rms_matmul.ts";
import { AUTO_FLASH_MAX_WORK } from "../../src/autograd/attention.ts";
import { GRAD_SUMS_SPLIT_MAX_BYTES } from "../../src/autograd/grad_sums.ts";
import { SKINNY_COST, SKINNY_MAX_M } from "../../src/tensor/matmul/skinny.ts";

/** The current value of every constant a rule may edit. */
export interface CurrentDefaults {
  /** src/autograd/norm.ts `FUSED_BLOCKS`. */
  fusedBlocks?: number;
  /** src/autograd/attention.ts `AUTO_FLASH_MAX_WORK`. */
  autoFlashMaxWork: number;
  /** src/autograd/add_rms_matmul.ts `ADD_RMS_FUSED_MAX_K` (Infinity: no bound). */
  addRmsFusedMaxK: number;
  /** src/autograd/grad_sums.ts `GRAD_SUMS_SPLIT_MAX_BYTES`. */
  gradSumsSplitMaxBytes: number;
  /** src/tensor/matmul/skinny.ts `SKINNY_MAX_M`. */
  skinnyMaxM: number;
  /** src/tensor/matmul/skinny.ts `SKINNY_COST.reduceUs`, `.swigluPerFma`. */
  reduceUs: number;
  swigluPerFma: number;
  /** src/obrs/gpu/topk.ts `a.groups ?? N`, `a.segments ?? N`; uniformCount's default. */
  topkGroups?: number;
  topkSegments?: number;
  topkUniformCount?: boolean;
  /** src/obrs/gpu/ops.ts `a.loads ?? N`. */
  lseLoads?: number;
}

function read(path: string): string {
  try {
    return Deno.readTextFileSync(new URL(`../../${path}`, import.meta.url));
  } catch {
    return "";
  }
}

function num(text: string, re: RegExp): number | undefined {
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * The defaults of this checkout.
 *
 * @example
 * ```ts
 * readDefaults().gradSumsSplitMaxBytes; // 4194304
 * ```
 */
export function readDefaults(): CurrentDefaults {
  const norm = read("src/autograd/norm.ts");
  const topk = read("src/obrs/gpu/topk.ts");
  const inputs = read("src/obrs/gpu/inputs.ts");
  const ops = read("src/obrs/gpu/ops.ts");
  const uc = /topkUniformCount \?\? (true|false)/.exec(inputs);
  return {
    fusedBlocks: num(norm, /const FUSED_BLOCKS = (\d+);/),
    autoFlashMaxWork: AUTO_FLASH_MAX_WORK,
    addRmsFusedMaxK: ADD_RMS_FUSED_MAX_K,
    gradSumsSplitMaxBytes: GRAD_SUMS_SPLIT_MAX_BYTES,
    skinnyMaxM: SKINNY_MAX_M,
    reduceUs: SKINNY_COST.reduceUs,
    swigluPerFma: SKINNY_COST.swigluPerFma,
    topkGroups: num(topk, /a\.groups \?\? (\d+)/),
    topkSegments: num(topk, /a\.segments \?\? (\d+)/),
    topkUniformCount: uc ? uc[1] === "true" : undefined,
    lseLoads: num(ops, /a\.loads \?\? (\d+)/),
  };
}
