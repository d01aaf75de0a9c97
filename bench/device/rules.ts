/**
 * The verdict rules of a device run (BENCHMARKS.md "Next GPU run", "Third session", "Fourth
 * session"), each a pure function from parsed bench files to a {@link Decision}: the row kernels
 * against the copy rate, the fused SwiGLU down projection, the attention "auto" bound and the
 * deferred split-K bound, plus the profile's summary. The decode-matmul rules are in
 * rules_skinny.ts, the OBRS sweep's in rules_obrs.ts.
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
import type { TransformerBenchRow } from "../nn/main.ts";
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
import type {
  AttentionFile,
  ProfileFile,
  SwigluDownFile,
  TensorFile,
  TransformerFile,
} from "./files.ts";

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
/** The attention A/B: composed wins only when faster than auto by more than this. */
export const ATTENTION_NOISE = 0.03;
/** The deferral bound moves only when the winner's sum beats the default's by more than this. */
export const DEFER_NOISE = 0.02;

const ANCHOR_NAMES = ANCHORS.map((a) => a.name);
const ms = (x: number) => `${x.toFixed(3)} ms`;

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

/** B·Hq·T²·D of an anchor's training attention (the quantity AUTO_FLASH_MAX_WORK bounds). */
export function attentionWork(anchor: string, B: number, T: number): number {
  const a = ANCHORS.find((x) => x.name === anchor);
  if (!a) return NaN;
  return B * a.config.heads * T * T * a.config.headDim;
}

function fmtWork(w: number): string {
  return w >= 1e9 ? `${(w / 1e9).toFixed(2)}G` : `${(w / 1e6).toFixed(1)}M`;
}

// A power of two strictly between `lo` and `hi` near their geometric mean, else `lo`.
function boundBetween(lo: number, hi: number): { value: number; text: string } {
  const e = Math.round(Math.log2(Math.sqrt(lo * hi)));
  for (const x of [e, e - 1, e + 1]) {
    if (2 ** x >= lo && 2 ** x < hi) return { value: 2 ** x, text: `2 ** ${x}` };
  }
  return { value: lo, text: String(lo) };
}

function workText(x: number): string {
  if (x === Number.POSITIVE_INFINITY) return "Number.POSITIVE_INFINITY";
  const e = Math.log2(x);
  return Number.isInteger(e) ? `2 ** ${e}` : String(x);
}

function transformerFigures(file: string, label: string, rows: TransformerBenchRow[]): Figure[] {
  return rows.map((r) =>
    fig(
      `${r.anchor} training step, ${label}`,
      r.stepGpuMs,
      "ms GPU",
      file,
      `${r.stepWallMs.toFixed(2)} ms wall`,
    )
  );
}

/**
 * Attention "auto" (flash v2) against composed, per anchor, by the training step's GPU time:
 * where composed wins by more than {@link ATTENTION_NOISE}, bound `AUTO_FLASH_MAX_WORK` between
 * the largest B·Hq·T²·D where v2 wins and the smallest where it loses.
 */
export function ruleAttention(
  composed: Input<TransformerFile>,
  auto: Input<TransformerFile>,
  bench: Input<AttentionFile>,
  cur: CurrentDefaults,
): Decision {
  const rule = "attention-auto";
  const title =
    `training step --attention composed vs auto (flash v2) per anchor: where composed is ` +
    `faster by > ${ATTENTION_NOISE * 100}%, bound AUTO_FLASH_MAX_WORK (B·Hq·T²·D) below it`;
  if (!has(composed) || !has(auto)) return cannotDecide(rule, title, problems(composed, auto));
  const figures = [
    ...transformerFigures(composed.path, "composed", composed.data.rows),
    ...transformerFigures(auto.path, "auto", auto.data.rows),
  ];
  if (has(bench)) {
    for (const r of bench.data.filter((x) => x.pass === "forward+backward")) {
      figures.push(
        fig(
          `${r.anchor} attention fwd+bwd, ${r.impl}`,
          r.ms,
          "ms GPU",
          bench.path,
          `${r.dispatches} dispatches`,
        ),
      );
    }
  }
  const wrongImpl = [[composed, "composed"], [auto, "auto"]].filter(([f, want]) =>
    (f as { data: TransformerFile }).data.attention !== want
  );
  if (wrongImpl.length) {
    return cannotDecide(
      rule,
      title,
      wrongImpl.map(([f, want]) => {
        const g = f as { path: string; data: TransformerFile };
        return `${g.path} ran --attention ${g.data.attention}, not ${want}`;
      }),
      figures,
    );
  }
  const cautions: string[] = [];
  if (composed.data.fallback || auto.data.fallback) {
    cautions.push("a CPU fallback adapter: not GPU figures");
  }
  const pairs = ANCHOR_NAMES.map((name) => ({
    name,
    c: composed.data.rows.find((r) => r.anchor === name),
    a: auto.data.rows.find((r) => r.anchor === name),
  }));
  const absent = pairs.filter((p) =>
    !p.c || !p.a || !Number.isFinite(p.c.stepGpuMs) || !Number.isFinite(p.a.stepGpuMs)
  );
  if (absent.length) {
    return cannotDecide(
      rule,
      title,
      absent.map((p) => `no GPU step time for ${p.name} in both files`),
      figures,
      cautions,
    );
  }
  const judged = pairs.map((p) => {
    const work = attentionWork(p.name, p.a!.B, p.a!.T);
    return {
      name: p.name,
      work,
      composedWins: p.c!.stepGpuMs < p.a!.stepGpuMs * (1 - ATTENTION_NOISE),
    };
  });
  for (const j of judged) {
    figures.push(
      fig(
        `${j.name} B·Hq·T²·D`,
        j.work,
        "",
        auto.path,
        j.composedWins ? "composed wins" : "v2 wins or ties",
      ),
    );
  }
  const lose = judged.filter((j) => j.composedWins);
  const win = judged.filter((j) => !j.composedWins);
  if (lose.length === 0) {
    return {
      rule,
      title,
      status: "no-change",
      figures,
      decision:
        `v2 wins or ties at every anchor: "auto" keeps v2 everywhere (AUTO_FLASH_MAX_WORK stays ${
          workText(cur.autoFlashMaxWork)
        })`,
      edits: [],
      missing: [],
      cautions,
    };
  }
  const minLose = Math.min(...lose.map((j) => j.work));
  const maxWin = Math.max(0, ...win.map((j) => j.work));
  if (maxWin >= minLose) {
    return cannotDecide(
      rule,
      title,
      [
        `no single bound fits: v2 loses at ${
          lose.map((j) => `${j.name} (${fmtWork(j.work)})`).join(", ")
        } but wins at a larger work ` +
        `(${
          win.map((j) => `${j.name} ${fmtWork(j.work)}`).join(", ")
        }); report the per-anchor figures`,
      ],
      figures,
      cautions,
    );
  }
  const bound = maxWin === 0 ? { value: 0, text: "0" } : boundBetween(maxWin, minLose);
  return {
    rule,
    title,
    status: "change",
    figures,
    decision:
      `composed wins at ${lose.map((j) => j.name).join(", ")}; v2 ${
        win.length ? `wins at ${win.map((j) => j.name).join(", ")}` : "wins nowhere"
      }: ` +
      `bound "auto" at ${bound.text} (${fmtWork(bound.value)}), between ${fmtWork(maxWin)} and ${
        fmtWork(minLose)
      }`,
    edits: [{
      file: "src/autograd/attention.ts",
      constant: "AUTO_FLASH_MAX_WORK",
      from: workText(cur.autoFlashMaxWork),
      to: bound.text,
    }],
    missing: [],
    cautions,
  };
}

/**
 * The deferred split-K bound: of `--defer-split-mb` 0, the default (the fusion stage's auto run)
 * and 64, keep the one with the lowest GPU ms per step summed over the anchors.
 */
export function ruleDefer(
  defer0: Input<TransformerFile>,
  auto: Input<TransformerFile>,
  defer64: Input<TransformerFile>,
  cur: CurrentDefaults,
): Decision {
  const rule = "defer-split";
  const dflt = cur.gradSumsSplitMaxBytes / 2 ** 20;
  const title =
    `deferred split-K partials: of --defer-split-mb 0, ${dflt} (default) and 64, keep the lowest ` +
    `GPU ms per training step summed over the anchors (moves if > ${
      DEFER_NOISE * 100
    }% below the default)`;
  if (!has(defer0) || !has(auto) || !has(defer64)) {
    return cannotDecide(rule, title, problems(defer0, auto, defer64));
  }
  const runs = [
    { mb: 0, f: defer0 },
    { mb: dflt, f: auto },
    { mb: 64, f: defer64 },
  ];
  const figures = runs.flatMap((r) => transformerFigures(r.f.path, `${r.mb} MiB`, r.f.data.rows));
  const cautions = [
    "the JSON does not record --defer-split-mb: the setting is read from the file names",
  ];
  const notAuto = runs.filter((r) => r.f.data.attention !== "auto");
  if (notAuto.length) {
    cautions.push(
      `attention differs between runs: ${
        notAuto.map((r) => `${r.f.path} ${r.f.data.attention}`).join(", ")
      }`,
    );
  }
  const missing: string[] = [];
  const sums = runs.map((r) => {
    let s = 0;
    for (const a of ANCHOR_NAMES) {
      const row = r.f.data.rows.find((x) => x.anchor === a);
      if (!row || !Number.isFinite(row.stepGpuMs)) {
        missing.push(`${r.f.path}: no GPU step time for ${a}`);
      } else s += row.stepGpuMs;
    }
    return { ...r, sum: s };
  });
  if (missing.length) return cannotDecide(rule, title, missing, figures, cautions);
  for (const s of sums) {
    figures.push(fig(`sum over anchors, ${s.mb} MiB`, s.sum, "ms GPU", s.f.path));
  }
  const perAnchor = ANCHOR_NAMES.map((a) => {
    const t = sums.map((s) => s.f.data.rows.find((x) => x.anchor === a)!.stepGpuMs);
    return sums[t.indexOf(Math.min(...t))].mb;
  });
  const best = sums.reduce((x, y) => (y.sum < x.sum ? y : x));
  const base = sums[1];
  const perAnchorText = ANCHOR_NAMES.map((a, i) => `${a} ${perAnchor[i]} MiB`).join(", ");
  if (best.mb === base.mb || best.sum >= base.sum * (1 - DEFER_NOISE)) {
    return {
      rule,
      title,
      status: "no-change",
      figures,
      decision:
        `the default ${dflt} MiB ${
          best.mb === base.mb ? "is lowest" : `is within ${DEFER_NOISE * 100}% of ${best.mb} MiB`
        } ` +
        `(${
          ms(base.sum)
        } summed; fastest per anchor: ${perAnchorText}): GRAD_SUMS_SPLIT_MAX_BYTES stays`,
      edits: [],
      missing: [],
      cautions,
    };
  }
  const allZero = best.mb === 0 && perAnchor.every((m) => m === 0);
  return {
    rule,
    title,
    status: "change",
    figures,
    decision:
      `${best.mb} MiB is lowest (${ms(best.sum)} against ${
        ms(base.sum)
      } at ${dflt} MiB; fastest per anchor: ${perAnchorText})` +
      (allZero
        ? ": 0 wins at every anchor, so split-K deferral is off by default and only the norm partials are deferred"
        : ""),
    edits: [{
      file: "src/autograd/grad_sums.ts",
      constant: "GRAD_SUMS_SPLIT_MAX_BYTES",
      from: `${dflt} * 2 ** 20`,
      to: best.mb === 0 ? "0" : `${best.mb} * 2 ** 20`,
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
