/**
 * The verdict rules of a device run (BENCHMARKS.md "Next GPU run", "Third session", "Fourth
 * session"), each a pure function from parsed bench files to a {@link Decision}: the row kernels
 * against the copy rate and the fused SwiGLU down projection, plus the profile's summary. The
 * decode-matmul rules are in rules_skinny.ts, the training-step ones (attention "auto" bound,
 * split-K deferral) in rules_nn.ts, the add-RMS fusion's in rules_add_rms.ts, the OBRS sweep's
 * in rules_obrs.ts.
 *
 * @example
 * ```ts
 * import { readDefaults } from "./defaults.ts";
 * const d = ruleRowKernels({ path: "bench/tensor.json", problem: "not found" }, readDefaults());
 * d.status; // "cannot-decide"
 * ```
 *
 * @module
 */
import { ANCHORS } from "../../src/nn/anchors.ts";
import { rowTileK } from "../../src/autograd/row_tile.ts";
import type { TensorBenchRow } from "../tensor/main.ts";
import type { CurrentDefaults } from "./defaults.ts";
import {
  cannotDecide,
  type Decision,
  fig,
  type Figure,
  has,
  type Input,
  pct,
  problems,
} from "./decision.ts";
import type { ProfileFile, SwigluDownFile, TensorFile } from "./files.ts";

/** Fraction of the copy rate a memory-bound kernel must reach (issue 4). */
export const ROW_TARGET = 0.8;
/** Within this many points of {@link ROW_TARGET}, a row is borderline: worth a rerun. */
export const ROW_BORDER = 0.02;
/**
 * Rows bench/tensor/main.ts gained with the register-tiled row kernels (after the 2026-11-23
 * H100 run): a file without them predates the candidates.
 */
export const ROW_CANDIDATE_OPS = [
  "max over last axis",
  "softmax backward",
  "crossEntropy backward",
];
/** The fused norm backward rows, whose shortfall points at `FUSED_BLOCKS`. */
export const FUSED_NORM_OPS = ["rmsNorm backward (dx, dw)", "layerNorm backward (dx, dw, db)"];
/** The ops that run the row kernels of kernels/ops_rows.wgsl (sums, max, softmax, norms, cross-entropy). */
const ROW_OP = /^(sum over|max|softmax|logSoftmax|rmsNorm|layerNorm|crossEntropy)/;
/** A fused SwiGLU product slower than composed by more than this loses at its anchor. */
export const SWIGLU_NOISE = 0.05;

const ANCHOR_NAMES = ANCHORS.map((a) => a.name);
/** Milliseconds as text. */
export const ms = (x: number): string => `${x.toFixed(3)} ms`;

/**
 * Row kernels ≥ 80% of copy: every op of bench/tensor at 4096 × 4096 against the copy kernel. A
 * fused norm backward below the target suggests register spills (more, smaller row blocks:
 * `FUSED_BLOCKS` up); any other row below it is reported with the register-tile hint.
 */
export function ruleRowKernels(tensor: Input<TensorFile>, cur: CurrentDefaults): Decision {
  const rule = "row-kernels";
  const title = `memory-bound kernels (bench/tensor) reach ≥ ${ROW_TARGET * 100}% of the copy ` +
    `rate; a fused norm backward below it → suspect register spills (FUSED_BLOCKS)`;
  if (!has(tensor)) return cannotDecide(rule, title, problems(tensor));
  const rows = tensor.data;
  const file = tensor.path;
  const missingOps = ROW_CANDIDATE_OPS.filter((op) => !rows.some((r) => r.op === op));
  if (missingOps.length) {
    return cannotDecide(rule, title, [
      `${file} predates the register-tiled row kernels (no '${
        missingOps[0]
      }' row): rerun the sweep stage`,
    ]);
  }
  const wall = rows.filter((r) => r.method !== "gpu-timestamps");
  if (wall.length) {
    return cannotDecide(rule, title, [
      `${file}: '${wall[0].op}' timed by ${wall[0].method}, not GPU timestamps`,
    ]);
  }
  if (!rows.some((r) => r.op.startsWith("copy"))) {
    return cannotDecide(rule, title, [`${file}: no copy row to measure against`]);
  }
  const cautions: string[] = [];
  const shape = rows[0].shape.join("×");
  if (shape !== "4096×4096") cautions.push(`shape ${shape}, not the rule's 4096×4096`);
  const ops = rows.filter((r) => !r.op.startsWith("copy"));
  const verdict = (r: TensorBenchRow) =>
    !(r.ofCopy >= ROW_TARGET)
      ? "fail"
      : r.ofCopy < ROW_TARGET + ROW_BORDER
      ? "pass (borderline)"
      : "pass";
  const figures: Figure[] = ops.map((r) =>
    fig(
      r.op,
      100 * r.ofCopy,
      "% of copy",
      file,
      `${verdict(r)}; ${r.gbPerSecond.toFixed(0)} GB/s, ${ms(r.ms)}`,
    )
  );
  const failed = ops.filter((r) => verdict(r) === "fail");
  const border = ops.filter((r) => Math.abs(r.ofCopy - ROW_TARGET) < ROW_BORDER);
  if (border.length) {
    cautions.push(
      `within ${ROW_BORDER * 100} points of the target: ${
        border.map((r) => r.op).join(", ")
      } (rerun before acting)`,
    );
  }
  if (failed.length === 0) {
    return {
      rule,
      title,
      status: "no-change",
      figures,
      decision: `all ${ops.length} ops reach ${
        ROW_TARGET * 100
      }% of copy: issue 4 met; the row kernels stay the default`,
      edits: [],
      missing: [],
      cautions,
    };
  }
  const norms = failed.filter((r) => FUSED_NORM_OPS.includes(r.op));
  const rowOps = failed.filter((r) => !FUSED_NORM_OPS.includes(r.op) && ROW_OP.test(r.op));
  const others = failed.filter((r) => !FUSED_NORM_OPS.includes(r.op) && !ROW_OP.test(r.op));
  const words = [
    `target missed: below ${ROW_TARGET * 100}% of copy: ${
      failed.map((r) => `${r.op} ${(100 * r.ofCopy).toFixed(0)}%`).join(", ")
    }`,
  ];
  if (rowOps.length) {
    const cols = rows[0].shape.at(-1) ?? 0;
    words.push(
      `${rowOps.map((r) => r.op).join(", ")}: suspect register spills in the register tile ` +
        `(rowTileK, src/autograd/row_tile.ts: K = ${rowTileK(cols)} vec4 per thread at ${cols} ` +
        `columns); compare bench/tensor/main.ts --cols ${cols / 2} before changing kernels`,
    );
  }
  if (others.length) {
    words.push(`${others.map((r) => r.op).join(", ")}: not row kernels; no rule names an edit`);
  }
  const edits = [];
  if (norms.length) {
    const now = cur.fusedBlocks;
    words.push(
      `${norms.map((r) => r.op).join(", ")}: suspect register spills; fewer rows per fused block ` +
        `(then rerun bench/tensor)`,
    );
    edits.push({
      file: "src/autograd/norm.ts",
      constant: "FUSED_BLOCKS",
      from: now === undefined ? "?" : String(now),
      to: now === undefined ? "twice the current value" : String(2 * now),
    });
  }
  return {
    rule,
    title,
    status: edits.length ? "change" : "no-change",
    figures,
    decision: words.join(". "),
    edits,
    missing: [],
    cautions,
  };
}

/**
 * The decode step's gate + down projection, composed against fused, per anchor: where fused is
 * slower by more than {@link SWIGLU_NOISE}, the recomputed gate costs more than the dispatch it
 * saves, and `swigluFusedObstacle` should keep the composed path there (or `swigluPerFma` rise).
 */
export function ruleSwigluDown(input: Input<SwigluDownFile>, cur: CurrentDefaults): Decision {
  const rule = "swiglu-down";
  const title = `decode gate + down projection: fused must not be slower than composed by more ` +
    `than ${
      SWIGLU_NOISE * 100
    }% at any anchor (else refuse it there in swigluFusedObstacle or raise swigluPerFma)`;
  if (!has(input)) return cannotDecide(rule, title, problems(input));
  const file = input.path;
  const rows = input.data.rows;
  const figures: Figure[] = [];
  for (const r of rows) {
    const note = `fused ${pct(r.fusedMs, r.composedMs)} vs composed; ` +
      `${((r.composedMs - r.fusedMs) * r.perStep * 1e3).toFixed(1)} µs saved per decode step`;
    figures.push(
      fig(
        `${r.anchor} composed [${r.composedKernels.join(" + ")}]`,
        r.composedMs * 1e3,
        "µs",
        file,
      ),
    );
    figures.push(
      fig(`${r.anchor} fused [${r.fusedKernels.join(" + ")}]`, r.fusedMs * 1e3, "µs", file, note),
    );
  }
  const wrong = rows.filter((r) => !(r.composedRatio <= 1 && r.fusedRatio <= 1));
  if (wrong.length) {
    return cannotDecide(rule, title, [
      `${file}: wrong results (err/bound > 1) at ${
        wrong.map((r) => r.anchor).join(", ")
      }: a bug to fix first`,
    ], figures);
  }
  const cautions: string[] = [];
  const absent = ANCHOR_NAMES.filter((a) => !rows.some((r) => r.anchor === a));
  if (absent.length) {
    cautions.push(`no figures for ${absent.join(", ")} (decided per anchor present)`);
  }
  const loses = rows.filter((r) => r.fusedMs > r.composedMs * (1 + SWIGLU_NOISE));
  if (loses.length === 0) {
    return {
      rule,
      title,
      status: "no-change",
      figures,
      decision: `fused is not slower at ${
        rows.map((r) => r.anchor).join(", ")
      }: it stays the default`,
      edits: [],
      missing: [],
      cautions,
    };
  }
  // A bound on the intermediate size when every loser is larger than every winner.
  const wins = rows.filter((r) => !loses.includes(r));
  const minLoseI = Math.min(...loses.map((r) => r.I));
  const monotone = wins.every((r) => r.I < minLoseI);
  const to = loses.length === rows.length
    ? `refuse every shape: \`if (!forced) return "composed is faster (H100 swiglu_down)"\``
    : monotone
    ? `refuse I ≥ ${minLoseI} unless forced: \`if (!forced && I >= ${minLoseI}) return "I = \${I}: composed is faster"\``
    : `refuse the anchors' shapes ${
      loses.map((r) => `I = ${r.I}, N = ${r.N}`).join("; ")
    } unless forced`;
  return {
    rule,
    title,
    status: "change",
    figures,
    decision:
      `fused loses at ${
        loses.map((r) => `${r.anchor} (${pct(r.fusedMs, r.composedMs)})`).join(", ")
      }: ` +
      `the recomputed gate costs more than the dispatch it saves there. Keep the composed path there ` +
      `(edit below), or instead raise SKINNY_COST.swigluPerFma from ${cur.swigluPerFma} so the fused ` +
      `tiling changes, and rerun bench/matmul/swiglu_down.ts`,
    edits: [{
      file: "src/autograd/swiglu_matmul.ts",
      constant: "swigluFusedObstacle",
      from: "no size bound",
      to,
    }],
    missing: [],
    cautions,
  };
}

/** The profile (bench/nn/profile.ts): each anchor's top kernels by GPU time, step and sampling. */
export function ruleProfile(input: Input<ProfileFile>, top = 5): Decision {
  const rule = "profile";
  const title =
    `where the GPU time goes: top ${top} kernels by total time per anchor (training step, sampling)`;
  if (!has(input)) return cannotDecide(rule, title, problems(input));
  const file = input.path;
  const figures: Figure[] = [];
  const lines: string[] = [];
  for (const p of input.data.profiles) {
    figures.push(
      fig(
        `${p.anchor} step, one pass`,
        p.stepOnePassMs,
        "ms",
        file,
        `${p.stepProfiledMs.toFixed(2)} ms profiled, ${p.stepDispatches} dispatches`,
      ),
    );
    for (const [what, rows] of [["step", p.stepByKernel], ["sampling", p.genByKernel]] as const) {
      const sorted = [...rows].sort((a, b) => b.totalMs - a.totalMs).slice(0, top);
      for (const r of sorted) {
        figures.push(
          fig(
            `${p.anchor} ${what}: ${r.label}`,
            r.totalMs,
            "ms",
            file,
            `${(100 * r.share).toFixed(1)}%, ${r.count}×`,
          ),
        );
      }
      if (sorted[0]) {
        lines.push(
          `${p.anchor} ${what}: ${sorted[0].label} ${(100 * sorted[0].share).toFixed(0)}%`,
        );
      }
    }
    figures.push(
      fig(
        `${p.anchor} sampling, profiled`,
        p.genProfiledMs,
        "ms",
        file,
        `${p.genDispatches} dispatches, ${
          (p.genProfiledMs / p.genTokens).toFixed(3)
        } ms per decode step`,
      ),
    );
  }
  return {
    rule,
    title,
    status: "info",
    figures,
    decision: `largest kernel per profile: ${lines.join("; ")}`,
    edits: [],
    missing: [],
    cautions: [],
  };
}
