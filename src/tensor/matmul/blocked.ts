/**
 * A product whose operand spans more than one storage binding (the classifier of a 151,936-token
 * vocabulary, [V, C] = 545–622 MB, against a binding limit of 128 MiB), computed as blocks that
 * each bind within the limit.
 *
 * Each stored operand (A, B, C, and the add-RMS prologue's r and sum) is a row-major matrix; a
 * block of it is a sub-matrix read through its row stride (`ldA`, `ldB`, `ldC` of the tiled and
 * skinny kernels), bound from the block's first element. What shrinks a block's binding is fewer
 * of the matrix's *rows*, so each operand over the limit cuts the dimension that indexes its
 * stored rows: a transposed B ([N, K], the classifier's Wᵀ) cuts N, a plain A or C cuts M, a
 * transposed A cuts K, a plain B ([K, N], the classifier's W in dX = dY·W) cuts K. Blocks along K
 * add into C (the first writes it unless the caller accumulates). Every block starts a multiple of
 * `minStorageBufferOffsetAlignment` into its operand, and none is ever split along K across
 * workgroups.
 *
 * @module
 */
import type { BufferSlice, ComputeBatch } from "../../gpu/batch.ts";
import type { GpuContext } from "../../gpu/device.ts";
import { matmulKernel, matmulUniform, type MatmulVariant } from "./kernels.ts";
import type { MatmulPlan } from "./plan.ts";
import { type AddRmsBindings, encodeSkinny, SKINNY_MAX_M, skinnyObstacle } from "./skinny.ts";

/** Block sizes of a split product along M (rows of C), N (columns of C) and K. */
export interface MatmulBlocks {
  M: number;
  N: number;
  K: number;
}

type Dim = keyof MatmulBlocks;

// A stored operand: which dimensions index its rows and columns, its row stride, how many stored
// columns one column of the product spans (2 for the SwiGLU prologue's joined rows), its offset.
interface Stored {
  name: string;
  rows: Dim;
  cols: Dim;
  ld: number;
  colScale: number;
}

function storedOperands(plan: MatmulPlan, addRms: boolean): Stored[] {
  const { M, N, K, transA, transB } = plan;
  const swiglu = plan.prologueA === "swiglu";
  const out: Stored[] = [
    transA
      ? { name: "a", rows: "K", cols: "M", ld: M, colScale: 1 }
      : { name: "a", rows: "M", cols: "K", ld: swiglu ? 2 * K : K, colScale: swiglu ? 2 : 1 },
    transB
      ? { name: "b", rows: "N", cols: "K", ld: K, colScale: 1 }
      : { name: "b", rows: "K", cols: "N", ld: N, colScale: 1 },
    { name: "c", rows: "M", cols: "N", ld: N, colScale: 1 },
  ];
  if (addRms) {
    out.push({ name: "addRms.r", rows: "M", cols: "K", ld: K, colScale: 1 });
    out.push({ name: "addRms.sum", rows: "M", cols: "K", ld: K, colScale: 1 });
  }
  return out;
}

// Elements a block of `o` spans in storage, from its first element.
function span(o: Stored, s: MatmulBlocks): number {
  return (s[o.rows] - 1) * o.ld + s[o.cols] * o.colScale;
}

/**
 * The blocks `plan` must be computed in so that every operand block fits one binding of
 * `plan.maxBinding` bytes and starts at a multiple of `alignBytes`, or null when every operand
 * fits whole (the product is recorded as usual). Throws a RangeError naming the operand when no
 * split can work (a batched product, K split under a prologue, one stored row over the limit).
 *
 * @example
 * ```ts
 * // logits = x · Wᵀ with W [151936, 1024]: W in blocks of rows (N), and C in rows if it is big
 * matmulBlocks(planMatmul(gpu, p), 256); // { M: 8, N: 32768, K: 1024 }
 * ```
 */
export function matmulBlocks(
  plan: MatmulPlan,
  alignBytes: number,
  addRms = plan.prologueA === "addRms",
): MatmulBlocks | null {
  const ops = storedOperands(plan, addRms);
  const full: MatmulBlocks = { M: plan.M, N: plan.N, K: plan.K };
  const limit = Math.floor(plan.maxBinding / 4);
  // Unbatched products only: a batched one's operands are batchCount matrices apart.
  const whole = (o: Stored) => {
    const e = o.name === "a"
      ? plan.extentA
      : o.name === "b"
      ? plan.extentB
      : o.name === "c"
      ? plan.extentC
      : plan.M * plan.K;
    return e <= limit;
  };
  if (ops.every(whole)) return null;
  const over = ops.filter((o) => !whole(o)).map((o) => o.name).join(", ");
  if (plan.batchCount > 1) {
    throw new RangeError(
      `matmul: ${over} of a batched product (batchCount ${plan.batchCount}) spans more than one ` +
        `storage binding (${plan.maxBinding} bytes); only unbatched products are split`,
    );
  }
  const step = Math.max(1, alignBytes / 4);
  const s = { ...full };
  // Shrinking one operand's rows never widens another's span: cut until every block fits.
  for (let changed = true; changed;) {
    changed = false;
    for (const o of ops) {
      if (span(o, s) <= limit) continue;
      const room = limit - s[o.cols] * o.colScale;
      const rows = room < 0 ? 0 : Math.floor(Math.floor(room / o.ld + 1) / step) * step;
      if (rows < 1) {
        throw new RangeError(
          `matmul: ${o.name} (rows ${o.ld} elements apart) cannot be split into blocks of one ` +
            `storage binding (${plan.maxBinding} bytes): ${step} of its rows do not fit`,
        );
      }
      if (rows < s[o.rows]) {
        s[o.rows] = rows;
        changed = true;
      }
    }
  }
  if (s.K < full.K && plan.prologueA) {
    throw new RangeError(
      `matmul: ${over} spans more than one storage binding, which needs K split, and the ` +
        `${plan.prologueA} prologue reads whole rows of A`,
    );
  }
  // As few blocks as that, of equal size (rounded up to the alignment step): none much smaller.
  for (const d of ["M", "N", "K"] as const) {
    if (s[d] >= full[d]) continue;
    const count = Math.ceil(full[d] / s[d]);
    s[d] = Math.min(s[d], Math.ceil(Math.ceil(full[d] / count) / step) * step);
  }
  return s;
}

/** What {@link encodeBlocked} binds: the operands at their slices' offsets. */
export interface BlockedJob {
  a: BufferSlice;
  b: BufferSlice;
  c: BufferSlice;
  /** r and sum of the add-RMS prologue (r null without a residual), and its gain and eps. */
  addRms?: { r: BufferSlice | null; sum: BufferSlice | null; gain: BufferSlice; eps: number };
  /** C shares a buffer with an operand it is read with (every binding read_write). */
  aliased: boolean;
  /** Forced variant: "skinny" keeps it; any other takes the tiled kernel. */
  variant?: MatmulVariant;
}

/**
 * Records `plan` as the blocks `blocks` ({@link matmulBlocks}): one tiled (or, for at most
 * `SKINNY_MAX_M` rows or a prologue, skinny) dispatch per block, reading and writing sub-matrices through their row
 * strides. Returns the number of dispatches.
 */
export function encodeBlocked(
  batch: ComputeBatch,
  gpu: GpuContext,
  plan: MatmulPlan,
  blocks: MatmulBlocks,
  job: BlockedJob,
): number {
  const ops = storedOperands(plan, job.addRms !== undefined);
  const byName = new Map(ops.map((o) => [o.name, o]));
  // Few rows take the skinny kernel on any adapter, a CPU one included (where unsplit products
  // take the tiled one): a block is thousands of columns wide, and there the tiled kernel's 64-row
  // tiles compute up to 64× the rows. llvmpipe, [1, 1024]·[30392, 1024]ᵀ: ~100–140 ms skinny,
  // ~525 ms tiled (M = 8: ~95 vs ~525 ms).
  const skinnyRows = job.variant === undefined ? SKINNY_MAX_M : 0;
  let count = 0;
  for (let m0 = 0; m0 < plan.M; m0 += blocks.M) {
    for (let n0 = 0; n0 < plan.N; n0 += blocks.N) {
      for (let k0 = 0; k0 < plan.K; k0 += blocks.K) {
        const at: MatmulBlocks = { M: m0, N: n0, K: k0 };
        const size: MatmulBlocks = {
          M: Math.min(blocks.M, plan.M - m0),
          N: Math.min(blocks.N, plan.N - n0),
          K: Math.min(blocks.K, plan.K - k0),
        };
        // The block of stored operand `name` in slice `s`: from its first element, its span.
        const part = (name: string, s: BufferSlice): BufferSlice => {
          const o = byName.get(name)!;
          const first = at[o.rows] * o.ld + at[o.cols] * o.colScale;
          const offset = (s.offset ?? 0) + first * 4;
          return { buffer: s.buffer, offset, size: span(o, size) * 4 };
        };
        const piece: MatmulPlan = {
          ...plan,
          M: size.M,
          N: size.N,
          K: size.K,
          accumulate: plan.accumulate || k0 > 0,
          strideA: 0,
          strideB: 0,
          strideC: 0,
          extentA: span(byName.get("a")!, size),
          extentB: span(byName.get("b")!, size),
          extentC: span(byName.get("c")!, size),
        };
        const a = part("a", job.a), b = part("b", job.b), c = part("c", job.c);
        const ld = { ldA: byName.get("a")!.ld, ldB: byName.get("b")!.ld, ldC: plan.N };
        const skinny = plan.prologueA !== undefined || job.variant === "skinny" ||
          (size.M <= skinnyRows && skinnyObstacle(piece) === undefined);
        if (skinny) {
          const rms = job.addRms;
          const addRms: AddRmsBindings | undefined = rms && {
            r: rms.r ? part("addRms.r", rms.r) : a,
            gain: rms.gain,
            sum: rms.sum ? part("addRms.sum", rms.sum) : c,
            residual: rms.r !== null,
            eps: rms.eps,
          };
          const force = { kSplits: 1 };
          encodeSkinny(batch, gpu, piece, {
            a,
            b,
            c,
            aliased: job.aliased,
            force,
            addRms,
            strides: ld,
          });
        } else {
          batch.dispatch({
            kernel: matmulKernel("tiled", { aliased: job.aliased }),
            constants: {
              TRANS_A: plan.transA ? 1 : 0,
              TRANS_B: plan.transB ? 1 : 0,
              ACCUMULATE: piece.accumulate ? 1 : 0,
            },
            bindings: [
              a,
              b,
              c,
              matmulUniform({
                ...size,
                strideA: 0,
                strideB: 0,
                strideC: 0,
                batchBase: 0,
                kChunk: 0,
                ...ld,
              }),
            ],
            workgroups: [Math.ceil(size.N / 64), Math.ceil(size.M / 64), 1],
          });
        }
        count++;
      }
    }
  }
  return count;
}
