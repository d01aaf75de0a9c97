/**
 * The decode-matmul rules of bench/matmul/README.md ("Decision rule for the H100 run"), read from
 * `bench/matmul/main.ts --decode --json`: trust first (err/bound ≤ 1, busy ≥ 80%, flat rounds,
 * `auto` within 5% of `v14`), then v14 (skinny) against `tiles` at all three anchors
 * (`SKINNY_MAX_M`), v15 (no split-K) against v14 (`SKINNY_COST.reduceUs`; v14's tiling per shape
 * as the run recorded it, else recomputed), and v16–v18.
 *
 * @module
 */
import {
  chooseSkinnyTiling,
  SKINNY_COST,
  SKINNY_MIN_CHUNK,
  skinnyCost,
  type SkinnyTiling,
} from "../../src/tensor/matmul/skinny.ts";
import { splitK } from "../../src/tensor/matmul/splitk.ts";
import { ANCHORS } from "../../src/nn/anchors.ts";
import type { MatmulBenchRow } from "../matmul/main.ts";
import type { DecodeShape } from "../matmul/decode.ts";
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
import type { MatmulDecodeFile } from "./files.ts";

/** A variant must beat v14 by more than this to say the cost model ranks tilings wrongly. */
export const VARIANT_MARGIN = 0.1;
/** `auto` and `v14` record the same dispatches: they must agree within this. */
export const CONTROL_MATCH = 0.05;

const ANCHOR_NAMES = ANCHORS.map((a) => a.name);

function rowOf(
  rows: MatmulBenchRow[],
  version: string,
  s: DecodeShape,
): MatmulBenchRow | undefined {
  return rows.find((r) =>
    r.version === version && r.M === s.M && r.N === s.N && r.K === s.K && r.layout === "NT" &&
    !r.skipped &&
    Number.isFinite(r.ms)
  );
}

/** µs of matmul per decode step of `anchor` for `version` (Σ perStep × median), NaN if a shape is absent. */
export function decodeStepUs(file: MatmulDecodeFile, anchor: string, version: string): number {
  const shapes = (file.decodeShapes ?? []).filter((s) => s.anchor === anchor);
  if (shapes.length === 0) return NaN;
  let us = 0;
  for (const s of shapes) {
    const r = rowOf(file.rows, version, s);
    if (!r) return NaN;
    us += s.perStep * r.ms * 1e3;
  }
  return us;
}

/** Why the run cannot be trusted (README: "Trust first"), one entry per failure. */
export function trustProblems(file: MatmulDecodeFile): string[] {
  const out: string[] = [];
  if (file.method !== "gpu-timestamps") out.push(`timed by ${file.method}, not GPU timestamps`);
  const name = (r: MatmulBenchRow) => `${r.M}×${r.N}×${r.K}`;
  for (const r of file.rows) {
    if (!r.skipped && r.maxRatio !== null && !(r.maxRatio <= 1)) {
      out.push(`${r.version} at ${name(r)}: err/bound ${r.maxRatio} > 1 (a wrong result)`);
    }
  }
  for (const s of file.decodeShapes ?? []) {
    const run = file.rows.find((r) => r.M === s.M && r.N === s.N && r.K === s.K && r.run)?.run;
    if (run) {
      const drift = Math.max(...run.roundFactors) / Math.min(...run.roundFactors);
      if (run.busy < 0.8) {
        out.push(
          `${s.anchor} ${s.role}: busy ${(100 * run.busy).toFixed(0)}% < 80% (the GPU idled)`,
        );
      }
      if (run.busy > 1.05) {
        out.push(`${s.anchor} ${s.role}: busy ${(100 * run.busy).toFixed(0)}% > 105% (timestamps)`);
      }
      if (drift > 1.15) {
        out.push(`${s.anchor} ${s.role}: round factors drift ${drift.toFixed(2)}× (speed changed)`);
      }
    }
    const a = rowOf(file.rows, "auto", s), v = rowOf(file.rows, "v14", s);
    if (a && v && Math.abs(a.ms / v.ms - 1) > CONTROL_MATCH) {
      out.push(
        `${s.anchor} ${s.role}: auto ${
          pct(a.ms, v.ms)
        } from v14 (same dispatches; must agree within 5%)`,
      );
    }
  }
  return out;
}

function stepFigures(path: string, file: MatmulDecodeFile, versions: string[]): Figure[] {
  const out: Figure[] = [];
  for (const a of ANCHOR_NAMES) {
    for (const v of versions) {
      const us = decodeStepUs(file, a, v);
      if (Number.isFinite(us)) out.push(fig(`${a} ${v}`, us, "µs of matmul per decode step", path));
    }
  }
  return out;
}

/**
 * Keep the skinny kernel (`SKINNY_MAX_M = 64`) if v14's µs per decode step is below `tiles`' at
 * all three anchors; if tiles wins at 29M (where the decode target is set), turn it off.
 */
export function ruleSkinnyDecode(input: Input<MatmulDecodeFile>, cur: CurrentDefaults): Decision {
  const rule = "skinny-decode";
  const title = "decode matmuls: keep the skinny kernel (v14) if its µs per decode step is below " +
    "tiles' at all three anchors; tiles faster at 29M → SKINNY_MAX_M = 0";
  if (!has(input)) return cannotDecide(rule, title, problems(input));
  const { path, data } = input;
  const figures = stepFigures(path, data, ["tiles", "v14"]);
  const cautions = data.isFallback ? ["a CPU fallback adapter: not GPU figures"] : [];
  const trust = trustProblems(data);
  if (trust.length) {
    return cannotDecide(
      rule,
      title,
      [`${path} is not trustworthy: ${trust.join("; ")}`],
      figures,
      cautions,
    );
  }
  const per = ANCHOR_NAMES.map((a) => ({
    a,
    tiles: decodeStepUs(data, a, "tiles"),
    v14: decodeStepUs(data, a, "v14"),
  }));
  const absent = per.filter((p) => !Number.isFinite(p.tiles) || !Number.isFinite(p.v14));
  if (absent.length) {
    return cannotDecide(
      rule,
      title,
      absent.map((p) => `${path}: no tiles and v14 figures for every ${p.a} shape`),
      figures,
      cautions,
    );
  }
  const loses = per.filter((p) => !(p.v14 < p.tiles));
  const text = per.map((p) => `${p.a} v14 ${p.v14.toFixed(0)} vs tiles ${p.tiles.toFixed(0)} µs`)
    .join(", ");
  if (loses.length === 0) {
    const saved = per.map((p) => `${p.a} ${((p.tiles - p.v14) * 128 / 1e3).toFixed(2)} ms`).join(
      ", ",
    );
    return {
      rule,
      title,
      status: "no-change",
      figures,
      decision: `v14 is faster at every anchor (${text}): SKINNY_MAX_M stays ${cur.skinnyMaxM}; ` +
        `a 128-token batch saves about ${saved} (confirm with bench/nn sampling)`,
      edits: [],
      missing: [],
      cautions,
    };
  }
  const at29 = loses.some((p) => p.a === "29M");
  return {
    rule,
    title,
    status: at29 ? "change" : "no-change",
    figures,
    decision:
      `v14 is not faster than tiles at ${
        loses.map((p) => p.a).join(", ")
      } (${text}): the kernel loses there; ` +
      (at29
        ? "it loses at 29M, where the decode target is set: turn it off"
        : "report the per-shape grid (bench/matmul/README.md)"),
    edits: at29
      ? [{
        file: "src/tensor/matmul/skinny.ts",
        constant: "SKINNY_MAX_M",
        from: String(cur.skinnyMaxM),
        to: "0",
      }]
      : [],
    missing: [],
    cautions,
  };
}

// Every tiling chooseSkinnyTiling weighs for (M, N, K), as it enumerates them.
function tilings(M: number, N: number, K: number): SkinnyTiling[] {
  const rowGroups = chooseSkinnyTiling(M, N, K).rowGroups;
  const out: SkinnyTiling[] = [];
  for (let wanted = 1; wanted <= 16; wanted *= 2) {
    const kSplits = wanted > 1 ? splitK(K, wanted).splits : 1;
    if (wanted > 1 && (kSplits < 2 || Math.ceil(K / kSplits) < SKINNY_MIN_CHUNK)) continue;
    for (const colGroups of [8, 4, 2, 1]) out.push({ rowGroups, colGroups, kSplits });
  }
  return out;
}

/**
 * The `reduceUs` at which the cost model stops splitting K for (M, N, K): the cheapest unsplit
 * tiling's cost minus the cheapest split tiling's cost without its reduction (ties go to fewer
 * splits). Infinity when no split is possible.
 */
export function splitBreakEvenUs(M: number, N: number, K: number): number {
  const all = tilings(M, N, K);
  const one = Math.min(...all.filter((t) => t.kSplits === 1).map((t) => skinnyCost(M, N, K, t)));
  const split = Math.min(
    ...all.filter((t) => t.kSplits > 1).map((t) => skinnyCost(M, N, K, t) - SKINNY_COST.reduceUs),
  );
  return Number.isFinite(split) ? one - split : Infinity;
}

/**
 * v15 (no split-K) against v14 on the shapes where v14 splits K: v15 faster by more than 10%
 * means a second dispatch costs more than `reduceUs`; raise it until the model stops splitting
 * there (and no further than where v14's splits still win).
 */
export function ruleSkinnyReduce(input: Input<MatmulDecodeFile>, cur: CurrentDefaults): Decision {
  const rule = "skinny-reduce";
  const title =
    `decode matmuls: v15 (no split-K) vs v14 where v14 splits K; v15 faster by > ${
      VARIANT_MARGIN * 100
    }% ` +
    `→ raise SKINNY_COST.reduceUs until those shapes stop splitting`;
  if (!has(input)) return cannotDecide(rule, title, problems(input));
  const { path, data } = input;
  const cautions: string[] = [];
  const shapes = data.decodeShapes ?? [];
  const recomputed = shapes.filter((s) => !s.v14Tiling);
  if (recomputed.length) {
    cautions.push(
      `v14's tilings are recomputed from this checkout's SKINNY_COST for ${
        recomputed.length === shapes.length
          ? "every shape"
          : recomputed.map((s) => `${s.anchor} ${s.role}`).join(", ")
      } (the JSON does not record them)`,
    );
  }
  const moved = shapes.filter((s) =>
    s.v14Tiling && s.v14Tiling.kSplits !== chooseSkinnyTiling(s.M, s.N, s.K).kSplits
  );
  if (moved.length) {
    cautions.push(
      `SKINNY_COST has changed since the run: this checkout splits K differently at ${
        moved.map((s) =>
          `${s.anchor} ${s.role} (ran ${s.v14Tiling!.kSplits}, now ${
            chooseSkinnyTiling(s.M, s.N, s.K).kSplits
          } K slices)`
        ).join(", ")
      }; the break-evens below are this checkout's`,
    );
  }
  if (data.isFallback) cautions.push("a CPU fallback adapter: not GPU figures");
  const trust = trustProblems(data);
  if (trust.length) {
    return cannotDecide(
      rule,
      title,
      [`${path} is not trustworthy: ${trust.join("; ")}`],
      [],
      cautions,
    );
  }
  const figures: Figure[] = [];
  const lowers: number[] = [], uppers: number[] = [];
  const won: string[] = [], lost: string[] = [], settled: string[] = [];
  let compared = 0;
  for (const s of shapes) {
    const v14 = rowOf(data.rows, "v14", s), v15 = rowOf(data.rows, "v15", s);
    if (!v14 || !v15) continue;
    const t = s.v14Tiling ?? chooseSkinnyTiling(s.M, s.N, s.K);
    const name = `${s.anchor} ${s.role} ${s.M}×${s.N}×${s.K} (v14: ${t.kSplits} K slices)`;
    compared++;
    if (t.kSplits === 1) {
      if (Math.abs(v15.ms / v14.ms - 1) > CONTROL_MATCH) {
        cautions.push(
          `${s.anchor} ${s.role}: v14 does not split, yet v15 is ${
            pct(v15.ms, v14.ms)
          } (same dispatch: noise)`,
        );
      }
      continue;
    }
    // Only the shapes v14 splits say anything about reduceUs; the others are controls.
    figures.push(fig(`${name} v14`, v14.ms * 1e3, "µs", path));
    figures.push(fig(`${name} v15`, v15.ms * 1e3, "µs", path, `v15 ${pct(v15.ms, v14.ms)}`));
    const even = splitBreakEvenUs(s.M, s.N, s.K);
    if (v15.ms < v14.ms * (1 - VARIANT_MARGIN) && !(even > cur.reduceUs)) {
      // The run split it, this checkout's cost model no longer does (see the caution).
      settled.push(`${s.anchor} ${s.role} (${pct(v15.ms, v14.ms)})`);
    } else if (v15.ms < v14.ms * (1 - VARIANT_MARGIN)) {
      lowers.push(even);
      won.push(
        `${s.anchor} ${s.role} (${pct(v15.ms, v14.ms)}, stops splitting at reduceUs ≥ ${
          even.toFixed(2)
        })`,
      );
    } else if (v14.ms < v15.ms * (1 - VARIANT_MARGIN)) {
      uppers.push(even);
      lost.push(`${s.anchor} ${s.role} (splitting wins: must stay below ${even.toFixed(2)})`);
    }
  }
  if (compared === 0) {
    return cannotDecide(rule, title, [`${path}: no v14 and v15 rows`], [], cautions);
  }
  if (figures.length === 0) cautions.push("v14 splits K on none of these shapes: nothing to judge");
  if (lowers.length === 0) {
    return {
      rule,
      title,
      status: "no-change",
      figures,
      decision:
        `v15 beats v14 by more than ${VARIANT_MARGIN * 100}% on no split shape${
          settled.length ? " this checkout still splits" : ""
        }: reduceUs stays ${cur.reduceUs}` +
        (settled.length
          ? `; v15 wins at ${settled.join(", ")}, which SKINNY_COST no longer splits`
          : "") +
        (lost.length ? `; splitting wins at ${lost.join(", ")}` : ""),
      edits: [],
      missing: [],
      cautions,
    };
  }
  const lo = Math.max(...lowers), hi = uppers.length ? Math.min(...uppers) : Infinity;
  const to = Math.ceil(lo * 2) / 2; // the next half microsecond at or above the break-even
  if (!(to < hi)) {
    return cannotDecide(
      rule,
      title,
      [
        `no single reduceUs fits: v15 wins at ${won.join(", ")} but v14's split wins at ${
          lost.join(", ")
        }; refit SKINNY_COST by hand`,
      ],
      figures,
      cautions,
    );
  }
  return {
    rule,
    title,
    status: "change",
    figures,
    decision:
      `a second dispatch costs more than reduceUs = ${cur.reduceUs} µs says: v15 wins at ${
        won.join(", ")
      }. ` +
      `Raise reduceUs to ${to} (the smallest half-µs at which chooseSkinnyTiling stops splitting those shapes` +
      (uppers.length ? `, below ${hi.toFixed(2)} where splitting wins` : "") +
      `), then rerun --decode`,
    edits: [{
      file: "src/tensor/matmul/skinny.ts",
      constant: "SKINNY_COST.reduceUs",
      from: String(cur.reduceUs),
      to: String(to),
    }],
    missing: [],
    cautions,
  };
}

/**
 * v16 (4 columns), v17 (32 columns) and v18 (no prefetch) against v14: the variant beating v14 by
 * more than 10% on more than half the shapes says which way to refit `SKINNY_COST.bytesPerUs`, or
 * that `PREFETCH` should default to false.
 */
export function ruleSkinnyVariants(input: Input<MatmulDecodeFile>): Decision {
  const rule = "skinny-variants";
  const title =
    `decode matmuls: v16/v17/v18 beating v14 by > ${VARIANT_MARGIN * 100}% on most shapes → ` +
    "refit SKINNY_COST.bytesPerUs (v17 up: lower it; v16: raise it) or PREFETCH false (v18)";
  if (!has(input)) return cannotDecide(rule, title, problems(input));
  const { path, data } = input;
  const trust = trustProblems(data);
  if (trust.length) {
    return cannotDecide(rule, title, [`${path} is not trustworthy: ${trust.join("; ")}`]);
  }
  const shapes = data.decodeShapes ?? [];
  const figures: Figure[] = [];
  const winsOf = (v: string) =>
    shapes.filter((s) => {
      const a = rowOf(data.rows, v, s), b = rowOf(data.rows, "v14", s);
      return a && b && a.ms < b.ms * (1 - VARIANT_MARGIN);
    });
  const advice: Record<string, { file: string; constant: string; from: string; to: string }> = {
    v17: {
      file: "src/tensor/matmul/skinny.ts",
      constant: "SKINNY_COST.bytesPerUs",
      from: String(SKINNY_COST.bytesPerUs),
      to: "lower: refit so chooseSkinnyTiling picks 32 columns where v17 wins",
    },
    v16: {
      file: "src/tensor/matmul/skinny.ts",
      constant: "SKINNY_COST.bytesPerUs",
      from: String(SKINNY_COST.bytesPerUs),
      to: "higher: refit so chooseSkinnyTiling picks 4 columns where v16 wins",
    },
    v18: {
      file: "kernels/matmul_skinny.wgsl",
      constant: "override PREFETCH default",
      from: "true",
      to: "false",
    },
  };
  const edits = [];
  const said: string[] = [];
  for (const v of ["v16", "v17", "v18"]) {
    const w = winsOf(v);
    figures.push(
      fig(
        `${v} beats v14 by > ${VARIANT_MARGIN * 100}%`,
        w.length,
        `of ${shapes.length} shapes`,
        path,
        w.map((s) => `${s.anchor} ${s.role}`).join(", "),
      ),
    );
    if (w.length > shapes.length / 2) {
      edits.push(advice[v]);
      said.push(`${v} wins on ${w.length} of ${shapes.length} shapes`);
    }
  }
  return {
    rule,
    title,
    status: edits.length ? "change" : "no-change",
    figures,
    decision: edits.length
      ? `${said.join("; ")}: refit and rerun --decode`
      : "no variant wins on most shapes: the cost model's column choice and PREFETCH stay",
    edits,
    missing: [],
    cautions: [],
  };
}
