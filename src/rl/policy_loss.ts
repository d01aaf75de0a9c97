/**
 * The policy loss of the RL trainer on the GPU (SPEC §4 Eq. 5, §5 no-clip row) as one autograd
 * op: per-token PPO terms weighted by the detached Jackpot/baseline weight ρ and the mask M,
 * aggregated into the loss to minimise, with the gradient flowing only into ℓ_new. The float64
 * oracle, the options and the statistics' meaning are in `policy_loss_reference.ts`.
 *
 * Three dispatches (kernels/rl_policy_loss.wgsl), never a readback: the forward is one workgroup
 * per sequence (terms, their derivative wrt ℓ_new, per-sequence sums) and one workgroup for the
 * loss and statistics; the backward is one thread per token. A fused op rather than ~15 composed
 * elementwise ops: the clip's branch, the clamp's gradient cut, the masks and the per-sequence
 * denominators would each be a dispatch and a [B, T] temporary, and the statistics several more.
 *
 * Non-finite inputs: a kept token whose ℓ_new or ℓ_ref is NaN or +Inf, or whose Â or ρ is not
 * finite, or whose mask is neither 0 nor 1, is left out of the loss and the gradient (as a masked
 * one) and counted in the statistics, like Jackpot's flagged rows (src/obrs/gpu/inputs.ts). The
 * step cannot stop without a readback, so the report comes when the statistics are read:
 * {@link decodePolicyLossStats} throws {@link PolicyLossNonFiniteError} by default, as
 * `jackpotWeights` throws `NonFiniteInputError`; `onNonFinite: "report"` returns the counts.
 *
 * @module
 */
import rowsSource from "../../kernels/ops_rows.wgsl" with { type: "text" };
import lossSource from "../../kernels/rl_policy_loss.wgsl" with { type: "text" };
import { grid, type Kernel } from "../gpu/mod.ts";
import {
  empty,
  f32,
  launch1d,
  materialize,
  opScope,
  params,
  readAll,
  runtime,
  sameShape,
  type Tensor,
} from "../tensor/mod.ts";
import { fmtShape } from "../tensor/shape.ts";
import { record } from "../autograd/tape.ts";
import {
  POLICY_LOSS_AGGREGATIONS,
  type PolicyLossOptions,
  type PolicyLossStats,
  resolvePolicyLossOptions,
} from "./policy_loss_reference.ts";

const kernel: Kernel = { name: "rl_policy_loss", code: rowsSource + lossSource };

/** Floats in the statistics tensor (layout: see {@link decodePolicyLossStats}). */
export const POLICY_LOSS_STATS_LENGTH = 16;
// floats per sequence in the forward's scratch (kernels/rl_policy_loss.wgsl SEQ)
const SEQ = 12;
// first non-finite index travels as an f32: exact below 2^24 tokens
const MAX_TOKENS = 2 ** 24;

/** Per-token inputs of {@link policyLoss}, all `[B, T]`; only `logpNew` receives a gradient. */
export interface PolicyLossInputs {
  /** ℓ_new of the sampled tokens (f32, usually with a gradient: `gatherLast` of a log-softmax). */
  logpNew: Tensor;
  /** ℓ_ref, the batch-time ("old") policy (f32, detached); required in "clip" mode. */
  logpRef?: Tensor;
  /** Â (f32, detached; GRPO's per-sequence value broadcast over its tokens). */
  advantages: Tensor;
  /** The detached weight ρ (f32; Jackpot's `rho` or a baseline's); omitted: 1 (on-policy). */
  weight?: Tensor;
  /** M: 1 keep, 0 leave out (f32, u32 such as Jackpot's mask, or i32). */
  mask: Tensor;
}

/** What {@link policyLoss} returns; all stay on the GPU. */
export interface PolicyLossResult {
  /** Scalar loss to minimise, −aggregate(L), differentiable wrt `logpNew`. */
  loss: Tensor;
  /** `[16]` f32 statistics: {@link decodePolicyLossStats} after one readback. */
  stats: Tensor;
  /** `[B, T]` f32 per-token L_t (0 where left out); not differentiable. */
  terms: Tensor;
}

/**
 * The policy loss of one mini-batch (see the module comment and `policy_loss_reference.ts`).
 * Everything but `logpNew` is detached; a loss summed with others (the joint trainer's) takes its
 * share of the sum's gradient. Inputs that are strided views (an `expand` of per-sequence
 * advantages) are copied once.
 *
 * @example
 * ```ts
 * const { loss, stats } = policyLoss(
 *   { logpNew, logpRef, advantages, weight: rho, mask },
 *   { epsLow: 0.2, epsHigh: 0.28, aggregation: "token-mean" },
 * );
 * backward(loss);
 * const s = decodePolicyLossStats(await read(stats)); // once per step, with the other stats
 * ```
 */
export function policyLoss(x: PolicyLossInputs, options: PolicyLossOptions = {}): PolicyLossResult {
  const op = "policyLoss";
  const o = resolvePolicyLossOptions(options, op);
  const [B, T] = checkInputs(op, x, o.ratio === "clip");
  const rt = runtime();
  const stats = empty([POLICY_LOSS_STATS_LENGTH], "f32", op);
  const terms = empty([B, T], "f32", op);
  const loss = opScope(() => {
    const ln = materialize(x.logpNew);
    const lr = x.logpRef && o.ratio === "clip" ? materialize(x.logpRef) : ln;
    const adv = materialize(x.advantages);
    const w = x.weight ? materialize(x.weight) : adv;
    const mask = materialize(x.mask);
    const dterm = empty([B, T], "f32", op);
    const seq = empty([B, SEQ], "f32", op);
    const agg = POLICY_LOSS_AGGREGATIONS.indexOf(o.aggregation);
    const p = params([B, T, agg, 0, f32(o.epsLow), f32(o.epsHigh), 0, 0]);
    rt.dispatch({
      kernel,
      entryPoint: "pl_rows",
      constants: {
        MASK_U32: mask.dtype === "f32" ? 0 : 1,
        MODE: o.ratio === "clip" ? 0 : 1,
        HAS_WEIGHT: x.weight ? 1 : 0,
      },
      bindings: [
        ln.binding,
        lr.binding,
        adv.binding,
        w.binding,
        mask.binding,
        terms.binding,
        dterm.binding,
        seq.binding,
        p,
      ],
      workgroups: grid(B),
    });
    rt.dispatch({
      kernel,
      entryPoint: "pl_finalize",
      bindings: [seq.binding, stats.binding, p],
      workgroups: [1],
    });
    const out = stats.viewAs([], [], 0, op); // stats[0]
    return record(out, op, [x.logpNew], (g) => {
      const dx = empty([B, T], "f32", "grad");
      const gs = materialize(g);
      launch1d(
        rt,
        kernel,
        "pl_bwd",
        [dterm.binding, seq.binding, stats.binding, gs.binding, dx.binding, p],
        B * T,
      );
      return [dx];
    });
  });
  return { loss, stats, terms };
}

// Dtypes and shapes of the inputs; returns [B, T].
function checkInputs(op: string, x: PolicyLossInputs, needRef: boolean): [number, number] {
  const s = x.logpNew?.shape;
  if (!s || s.length !== 2 || s[0] < 1 || s[1] < 1) {
    throw new RangeError(
      `${op}: logpNew must be [B, T] with B, T >= 1, got ${s ? fmtShape(s) : String(x.logpNew)}`,
    );
  }
  if (needRef && !x.logpRef) {
    throw new RangeError(`${op}: ratio "clip" needs logpRef (the batch-time policy's log-probs)`);
  }
  const named: [string, Tensor | undefined, string[]][] = [
    ["logpNew", x.logpNew, ["f32"]],
    ["logpRef", x.logpRef, ["f32"]],
    ["advantages", x.advantages, ["f32"]],
    ["weight", x.weight, ["f32"]],
    ["mask", x.mask, ["f32", "u32", "i32"]],
  ];
  for (const [name, t, dtypes] of named) {
    if (!t) {
      if (name === "advantages" || name === "mask") {
        throw new TypeError(`${op}: ${name} is missing`);
      }
      continue;
    }
    if (!dtypes.includes(t.dtype)) {
      throw new TypeError(
        `${op}: ${name} must be a ${dtypes.join(" or ")} tensor, got ${t.describe()}`,
      );
    }
    t.expectDtype(op, t.dtype); // throws on a released tensor, naming it
    if (!sameShape(t.shape, s)) {
      throw new RangeError(
        `${op}: ${name} ${fmtShape(t.shape)} must have the shape of logpNew ${fmtShape(s)}`,
      );
    }
  }
  if (s[0] * s[1] >= MAX_TOKENS) {
    throw new RangeError(`${op}: ${fmtShape(s)} has ${s[0] * s[1]} tokens, at most 2^24 - 1`);
  }
  return [s[0], s[1]];
}

/** Tokens left out of the loss for non-finite inputs (see the module comment). */
export class PolicyLossNonFiniteError extends Error {
  /** Tokens left out. */
  count: number;
  /** Row-major index (b·T + t) of the first. */
  first: number;
  /** @param count tokens left out; @param first the first of them. */
  constructor(count: number, first: number) {
    super(
      `policyLoss: ${count} token(s) with mask 1 have a NaN/+Inf log-prob, a non-finite advantage ` +
        `or weight, or their mask is neither 0 nor 1 (first: token ${first}); they were left out ` +
        `of the loss and gradient; pass onNonFinite: "report" to accept the counts`,
    );
    this.name = "PolicyLossNonFiniteError";
    this.count = count;
    this.first = first;
  }
}

/** Options of {@link decodePolicyLossStats}. */
export interface DecodePolicyLossStatsOptions {
  /** "throw" (default): non-finite tokens raise {@link PolicyLossNonFiniteError}; "report": count. */
  onNonFinite?: "throw" | "report";
}

/**
 * The statistics from the `[16]` floats of {@link PolicyLossResult.stats}, read back by the caller
 * (with the step's other statistics, one wait). Layout: loss, Σ L, kept tokens, kept sequences,
 * empty sequences, clip fraction (low + high), clip low, clip high, mean r, max |log r| before the
 * clamp, clamped tokens, non-finite tokens, first non-finite index (−1: none), backward scale.
 *
 * @example
 * ```ts
 * const [raw] = await readAll([stats]);
 * const s = decodePolicyLossStats(raw as Float32Array, { onNonFinite: "report" });
 * ```
 */
export function decodePolicyLossStats(
  raw: ArrayLike<number>,
  opts: DecodePolicyLossStatsOptions = {},
): PolicyLossStats {
  const mode = opts.onNonFinite ?? "throw";
  if (mode !== "throw" && mode !== "report") {
    throw new RangeError(
      `decodePolicyLossStats: onNonFinite must be "throw" or "report", got ${mode}`,
    );
  }
  if (raw.length < POLICY_LOSS_STATS_LENGTH) {
    throw new RangeError(
      `decodePolicyLossStats: ${raw.length} values, expected ${POLICY_LOSS_STATS_LENGTH}`,
    );
  }
  const count = raw[11];
  if (count > 0 && mode === "throw") throw new PolicyLossNonFiniteError(count, raw[12]);
  return {
    loss: raw[0],
    termSum: raw[1],
    keptTokens: raw[2],
    keptSequences: raw[3],
    emptySequences: raw[4],
    clipFraction: raw[5],
    clipLowFraction: raw[6],
    clipHighFraction: raw[7],
    meanRatio: raw[8],
    maxAbsLogRatio: raw[9],
    clampedTokens: raw[10],
    nonFinite: { count, first: raw[12] >= 0 ? raw[12] : null },
  };
}

/**
 * Reads and decodes the statistics (one readback; a trainer reading other tensors too should
 * read them together and call {@link decodePolicyLossStats}).
 */
export async function readPolicyLossStats(
  stats: Tensor,
  opts: DecodePolicyLossStatsOptions = {},
): Promise<PolicyLossStats> {
  const [raw] = await readAll([stats]);
  return decodePolicyLossStats(raw, opts);
}
