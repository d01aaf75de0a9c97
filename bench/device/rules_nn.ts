/**
 * The training-step rules of a device run (BENCHMARKS.md, "Third session": rules 1 and 2), from
 * `bench/nn/main.ts --json` runs: the attention A/B that bounds "auto" (`AUTO_FLASH_MAX_WORK`)
 * and the split-K deferral bound (`GRAD_SUMS_SPLIT_MAX_BYTES`). Pure functions, as in rules.ts.
 *
 * @module
 */
import { ANCHORS } from "../../src/nn/anchors.ts";
import type { TransformerBenchRow } from "../nn/main.ts";
import type { CurrentDefaults } from "./defaults.ts";
import {
  cannotDecide,
  type Decision,
  fig,
  type Figure,
  has,
  type Input,
  problems,
} from "./decision.ts";
import type { AttentionFile, TransformerFile } from "./files.ts";
import { ms } from "./rules.ts";

/** The attention A/B: composed wins only when faster than auto by more than this. */
export const ATTENTION_NOISE = 0.03;
/** The deferral bound moves only when the winner's sum beats the default's by more than this. */
export const DEFER_NOISE = 0.02;

const ANCHOR_NAMES = ANCHORS.map((a) => a.name);

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
 * and 64, keep the one with the lowest GPU ms per step summed over the anchors. Each run's setting
 * is the `deferSplitMb` its JSON records; a file without it (older runs) is taken to hold the
 * setting its name says (transformer_defer0.json: 0, transformer_auto.json: the default,
 * transformer_defer64.json: 64).
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
  const slots = [
    { named: 0, f: defer0 },
    { named: dflt, f: auto },
    { named: 64, f: defer64 },
  ];
  const cautions: string[] = [];
  const guessed = slots.filter((r) => r.f.data.deferSplitMb === undefined);
  if (guessed.length) {
    cautions.push(
      `no recorded --defer-split-mb (an older run) in ${
        guessed.map((r) => r.f.path).join(", ")
      }: the setting is read from the file name`,
    );
  }
  const off = slots.filter((r) => r.f.data.deferSplitMb === "off");
  const runs = slots.map((r) => {
    const recorded = r.f.data.deferSplitMb;
    return recorded === "off"
      ? { mb: NaN, label: "off", f: r.f }
      : { mb: recorded ?? r.named, label: `${recorded ?? r.named} MiB`, f: r.f };
  });
  const figures = runs.flatMap((r) => transformerFigures(r.f.path, r.label, r.f.data.rows));
  if (off.length) {
    return cannotDecide(
      rule,
      title,
      off.map((r) => `${r.f.path} ran --defer-split-mb off (no deferred sums), not a split bound`),
      figures,
      cautions,
    );
  }
  const twice = runs.filter((r, i) => runs.findIndex((x) => x.mb === r.mb) !== i);
  if (twice.length) {
    return cannotDecide(
      rule,
      title,
      [
        `two runs at ${twice[0].mb} MiB (${
          runs.filter((r) => r.mb === twice[0].mb).map((r) => r.f.path).join(", ")
        }): three settings are needed`,
      ],
      figures,
      cautions,
    );
  }
  if (!runs.some((r) => r.mb === dflt)) {
    return cannotDecide(
      rule,
      title,
      [`no run at the default ${dflt} MiB (the runs record ${runs.map((r) => r.mb).join(", ")})`],
      figures,
      cautions,
    );
  }
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
  const base = sums.find((s) => s.mb === dflt)!;
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
