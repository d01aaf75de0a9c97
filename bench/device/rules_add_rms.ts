/**
 * The add-RMS fusion's rule (`bench/matmul/add_rms_qkv.ts --json`, run.sh's defer stage): per
 * anchor, the decode step's three products that read a norm (q/k/v, gate/up, classifier), the
 * norm dispatch + matmul against the fused skinny matmul, and where fused loses, the bound
 * `ADD_RMS_FUSED_MAX_K` (src/autograd/add_rms_matmul.ts) that composes there. A pure function, as
 * in rules.ts.
 *
 * @example
 * ```ts
 * import { readDefaults } from "./defaults.ts";
 * const d = ruleAddRms({ path: "bench/add_rms_qkv.json", problem: "not found" }, readDefaults());
 * d.status; // "cannot-decide"
 * ```
 *
 * @module
 */
import { ANCHORS } from "../../src/nn/anchors.ts";
import type { AddRmsRow } from "../matmul/add_rms_qkv.ts";
import type { CurrentDefaults } from "./defaults.ts";
import {
  cannotDecide,
  type Decision,
  type Edit,
  fig,
  type Figure,
  has,
  type Input,
  pct,
  problems,
} from "./decision.ts";
import type { AddRmsFile } from "./files.ts";

/**
 * An anchor loses when fused is slower than composed, over its three products per decode step,
 * by more than this fraction of the composed time; within it is a tie and fused (one dispatch
 * and one [M, K] intermediate fewer) stays.
 */
export const ADD_RMS_NOISE = 0.05;
/** The products bench/matmul/add_rms_qkv.ts times per anchor (its `product` field). */
export const ADD_RMS_PRODUCTS = ["qkv", "gateUp", "head"];

const FILE = "src/autograd/add_rms_matmul.ts";
const CONSTANT = "ADD_RMS_FUSED_MAX_K";

/** A bound as written in the source. */
function kText(k: number): string {
  return k === Number.POSITIVE_INFINITY ? "Number.POSITIVE_INFINITY" : String(k);
}

/** One anchor's decode step: µs per step each way, summed over its products. */
interface AnchorSum {
  anchor: string;
  K: number;
  composedUs: number;
  fusedUs: number;
  /** composed − fused, µs per decode step (> 0: fused saves time). */
  savedUs: number;
  verdict: "wins" | "ties" | "loses";
}

function sumAnchor(anchor: string, rows: AddRmsRow[]): AnchorSum {
  const composedUs = rows.reduce((s, r) => s + r.composedMs * r.perStep * 1e3, 0);
  const fusedUs = rows.reduce((s, r) => s + r.fusedMs * r.perStep * 1e3, 0);
  const savedUs = composedUs - fusedUs;
  const verdict = savedUs < -ADD_RMS_NOISE * composedUs
    ? "loses"
    : savedUs > ADD_RMS_NOISE * composedUs
    ? "wins"
    : "ties";
  return { anchor, K: Math.max(...rows.map((r) => r.K)), composedUs, fusedUs, savedUs, verdict };
}

/**
 * The add + RMSNorm + projection of a decode step, composed against fused, per anchor (the sum
 * over its q/k/v, gate/up and classifier products × their count per step): where fused loses by
 * more than {@link ADD_RMS_NOISE}, `ADD_RMS_FUSED_MAX_K` is set below that anchor's K (the largest
 * K where fused still wins or ties; 0 when every anchor loses), if one bound separates the losers
 * from the winners.
 */
export function ruleAddRms(input: Input<AddRmsFile>, cur: CurrentDefaults): Decision {
  const rule = "add-rms";
  const title = `decode add + RMSNorm + projection (bench/matmul/add_rms_qkv.ts): per anchor, ` +
    `saved = Σ (composedMs − fusedMs) × perStep over q/k/v, gate/up and classifier; fused loses ` +
    `an anchor when saved < −${ADD_RMS_NOISE * 100}% of Σ composedMs × perStep (within ±${
      ADD_RMS_NOISE * 100
    }%: a tie, fused stays) → ADD_RMS_FUSED_MAX_K = the largest K where fused wins or ties, ` +
    `below the smallest losing anchor's K (0 if every anchor loses; no single bound if losers and ` +
    `winners interleave in K)`;
  if (!has(input)) return cannotDecide(rule, title, problems(input));
  const file = input.path;
  const rows = input.data.rows;
  const figures: Figure[] = [];
  for (const r of rows) {
    const shape = `${r.anchor} ${r.product} ${r.M}×${r.N}×${r.K} (${r.perStep} per step)`;
    figures.push(
      fig(`${shape} composed [${r.composedKernels.join(" + ")}]`, r.composedMs * 1e3, "µs", file),
      fig(
        `${shape} fused [${r.fusedKernels.join(" + ")}]`,
        r.fusedMs * 1e3,
        "µs",
        file,
        `fused ${pct(r.fusedMs, r.composedMs)}; ${
          ((r.composedMs - r.fusedMs) * r.perStep * 1e3).toFixed(1)
        } µs saved per decode step`,
      ),
    );
  }
  const wrong = rows.filter((r) => !(r.composedRatio <= 1 && r.fusedRatio <= 1 && r.sumsExact));
  if (wrong.length) {
    const what = wrong.map((r) =>
      `${r.anchor} ${r.product} (${
        [
          r.composedRatio <= 1 ? "" : `composed err/bound ${r.composedRatio}`,
          r.fusedRatio <= 1 ? "" : `fused err/bound ${r.fusedRatio}`,
          r.sumsExact ? "" : "sum not bit-exact",
        ].filter(Boolean).join(", ")
      })`
    );
    return cannotDecide(rule, title, [
      `${file}: wrong results at ${what.join("; ")}: a bug to fix first`,
    ], figures);
  }
  const cautions: string[] = [];
  if (rows.some((r) => !r.composedKernels.some((k) => k.startsWith("matmul_skinny")))) {
    cautions.push(
      "composed did not run the skinny kernel (a CPU adapter, or SKINNY_MAX_M = 0): not the " +
        "H100's decode path",
    );
  }
  // Anchors in the order of src/nn/anchors.ts, then any others the file names.
  const names = [...new Set([...ANCHORS.map((a) => a.name), ...rows.map((r) => r.anchor)])];
  const absent: string[] = [], partial: string[] = [];
  const sums: AnchorSum[] = [];
  for (const name of names) {
    const mine = rows.filter((r) => r.anchor === name);
    const lacks = ADD_RMS_PRODUCTS.filter((p) => !mine.some((r) => r.product === p));
    if (mine.length === 0) absent.push(name);
    else if (lacks.length) partial.push(`${name} (no ${lacks.join(", ")})`);
    else sums.push(sumAnchor(name, mine));
  }
  if (absent.length) cautions.push(`no figures for ${absent.join(", ")} (decided on the others)`);
  if (partial.length) {
    cautions.push(`left out, not all three products: ${partial.join(", ")}`);
  }
  if (sums.length === 0) {
    return cannotDecide(
      rule,
      title,
      [`${file}: no anchor with all three products (${ADD_RMS_PRODUCTS.join(", ")})`],
      figures,
      cautions,
    );
  }
  for (const s of sums) {
    figures.push(
      fig(
        `${s.anchor} (K = ${s.K}) saved per decode step`,
        s.savedUs,
        "µs",
        file,
        `fused ${s.verdict} (${pct(s.fusedUs, s.composedUs)}: ${s.fusedUs.toFixed(1)} against ` +
          `${s.composedUs.toFixed(1)} µs composed)`,
      ),
    );
  }
  const ties = sums.filter((s) => s.verdict === "ties");
  if (ties.length) {
    cautions.push(
      `within ${ADD_RMS_NOISE * 100}%: ${
        ties.map((s) => s.anchor).join(", ")
      } (a tie: fused stays there; rerun before reading more into it)`,
    );
  }
  const byK = [...sums].sort((a, b) => a.K - b.K);
  const loses = byK.filter((s) => s.verdict === "loses");
  const keeps = byK.filter((s) => s.verdict !== "loses");
  const text = (xs: AnchorSum[]) =>
    xs.map((s) => `${s.anchor} (K = ${s.K}, ${pct(s.fusedUs, s.composedUs)})`).join(", ");
  const from = kText(cur.addRmsFusedMaxK);
  const decide = (to: number, words: string): Decision => {
    const same = to === cur.addRmsFusedMaxK;
    const edits: Edit[] = same ? [] : [{ file: FILE, constant: CONSTANT, from, to: kText(to) }];
    return {
      rule,
      title,
      status: same ? "no-change" : "change",
      figures,
      decision: same ? `${words}: ${CONSTANT} stays ${from}` : words,
      edits,
      missing: [],
      cautions,
    };
  };
  const maxKeepK = Math.max(0, ...keeps.map((s) => s.K));
  if (loses.length === 0) {
    // Every anchor present keeps fused: the bound must let them all through.
    if (cur.addRmsFusedMaxK >= maxKeepK) {
      return decide(cur.addRmsFusedMaxK, `fused wins or ties at ${text(keeps)}`);
    }
    const to = absent.length || partial.length ? maxKeepK : Number.POSITIVE_INFINITY;
    return decide(
      to,
      `fused wins or ties at ${text(keeps)}, above the current bound: raise ${CONSTANT}`,
    );
  }
  const minLoseK = loses[0].K;
  if (maxKeepK >= minLoseK) {
    return cannotDecide(
      rule,
      title,
      [
        `no single bound fits: fused loses at ${text(loses)} but wins or ties at a K as large ` +
        `(${text(keeps)}); report the per-product figures`,
      ],
      figures,
      cautions,
    );
  }
  return decide(
    maxKeepK,
    keeps.length === 0
      ? `fused loses at every anchor measured (${
        text(loses)
      }): decode goes back to the norm dispatch + matmul (${CONSTANT} = 0; { fused: true } ` +
        `still forces it)`
      : `fused loses at ${text(loses)} and wins or ties at ${
        text(keeps)
      }: compose for K > ${maxKeepK} (any bound from ${maxKeepK} to ${
        minLoseK - 1
      } refuses the same anchors)`,
  );
}
