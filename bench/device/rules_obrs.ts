/**
 * The OBRS sweep's decision rule (bench/obrs/README.md, "Decision rule"), on the cases of
 * bench/obrs/sweep.sh merged from its stages' JSON and its log: WRONG variants, the log-sum-exp
 * loads, the controls, and which fused-pass options become the Jackpot weights' defaults.
 * "Faster" means by at least {@link OBRS_FASTER}, medians at k = 20 unless stated.
 *
 * @module
 */
import { FUSED_VARIANTS } from "../obrs/versions.ts";
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
import type { ObrsCase, ObrsSweep } from "./files.ts";

/** "Faster" in the OBRS rule: a median at least this much below the other. */
export const OBRS_FASTER = 0.05;
/** The fused pass's figure in the last H100 run (repeated runs): the control's bound, ms. */
export const FUSED_CONTROL_MS = 1.9;
/** Issue 3's targets at 4,096 × 151,936: Jackpot weights and top-k alone, ms. */
export const JACKPOT_TARGET_MS = 2.5;
export const TOPK_TARGET_MS = 1.2;

const faster = (a: number, b: number) => a <= b * (1 - OBRS_FASTER);

function get(s: ObrsSweep, id: string, k = 20): ObrsCase | undefined {
  return s.cases.find((c) => c.id === id && c.k === k);
}

function caseFig(c: ObrsCase, note?: string): Figure {
  return fig(
    `k = ${c.k} ${c.id}`,
    c.medianMs,
    "ms",
    c.file,
    note ?? `floor ${c.limitMs.toFixed(3)} ms`,
  );
}

/** The library defaults among the cases, and the kernel whose commit to revert if one is WRONG. */
export const OBRS_DEFAULT_KERNELS: Record<string, string> = {
  "lse-v2": "kernels/logsoftmax.wgsl",
  "v10": "kernels/topk_stream.wgsl",
  "fused": "kernels/topk_stream.wgsl",
};

/** Rule 1: a WRONG variant is out; a WRONG library default is reverted. */
export function ruleObrsWrong(input: Input<ObrsSweep>): Decision {
  const rule = "obrs-wrong";
  const title =
    "OBRS sweep: any WRONG case is out (a bug to fix); a WRONG default (lse-v2, v10, fused) is reverted";
  if (!has(input)) return cannotDecide(rule, title, problems(input));
  const wrong = input.data.wrong;
  const figures = wrong.map((w) => fig(`k = ${w.k} ${w.id} WRONG`, NaN, "", w.file, w.why));
  const defaults = [...new Set(wrong.map((w) => w.id).filter((id) => id in OBRS_DEFAULT_KERNELS))];
  const edits: Edit[] = [...new Set(defaults.map((id) => OBRS_DEFAULT_KERNELS[id]))].map((
    file,
  ) => ({
    file,
    constant: "the commit that made the failing default",
    from: "current kernel",
    to: `revert (git log -- ${file})`,
  }));
  return {
    rule,
    title,
    status: edits.length ? "change" : "no-change",
    figures,
    decision: wrong.length === 0
      ? `no WRONG case in ${input.data.files.length} files`
      : `WRONG: ${
        [...new Set(wrong.map((w) => w.id))].join(", ")
      }: out of the promotion, bugs to fix first` +
        (defaults.length ? `; library default(s) ${defaults.join(", ")} wrong: revert` : ""),
    edits,
    missing: [],
    cautions: input.data.notes,
  };
}

/** Rule 2: keep lse-v2 unless slower than lse-v1; a loads count faster than 4 becomes the default. */
export function ruleObrsLse(input: Input<ObrsSweep>, cur: CurrentDefaults): Decision {
  const rule = "obrs-lse";
  const title = `log-sum-exp: keep lse-v2 unless ${OBRS_FASTER * 100}% slower than lse-v1; ` +
    `lse-v2-l1/-l2/-l8 ${OBRS_FASTER * 100}% faster than lse-v2 → its LOADS becomes the default`;
  if (!has(input)) return cannotDecide(rule, title, problems(input));
  const s = input.data;
  const v1 = get(s, "lse-v1"), v2 = get(s, "lse-v2");
  const others = ["lse-v2-l1", "lse-v2-l2", "lse-v2-l8"].map((id) => get(s, id)).filter((c) =>
    c !== undefined
  );
  const figures = [v1, v2, ...others].filter((c) => c !== undefined).map((c) => caseFig(c));
  if (!v1 || !v2) {
    return cannotDecide(rule, title, [
      `no k = 20 ${!v1 ? "lse-v1" : "lse-v2"} figure in ${s.files.join(", ") || "the sweep"}`,
    ], figures);
  }
  const loads = cur.lseLoads === undefined ? "?" : String(cur.lseLoads);
  if (faster(v1.medianMs, v2.medianMs)) {
    return {
      rule,
      title,
      status: "change",
      figures,
      decision: `lse-v2 is slower than lse-v1 (${pct(v2.medianMs, v1.medianMs)}): revert it`,
      edits: [{
        file: "kernels/logsoftmax.wgsl",
        constant: "lse (vec4 loads in flight)",
        from: "lse-v2",
        to: "revert (git log -- kernels/logsoftmax.wgsl)",
      }],
      missing: [],
      cautions: s.notes,
    };
  }
  const best = others.reduce<ObrsCase | undefined>(
    (b, c) => (!b || c.medianMs < b.medianMs ? c : b),
    undefined,
  );
  const floor = `lse-v2 ${v2.medianMs.toFixed(3)} ms against the ${v2.limitMs.toFixed(3)} ms floor`;
  if (best && faster(best.medianMs, v2.medianMs)) {
    const n = best.id.slice("lse-v2-l".length);
    return {
      rule,
      title,
      status: "change",
      figures,
      decision: `${best.id} is faster than lse-v2 (${
        pct(best.medianMs, v2.medianMs)
      }): ${n} loads in flight become the default (${floor})`,
      edits: [{
        file: "src/obrs/gpu/ops.ts",
        constant: "a.loads ?? N",
        from: `a.loads ?? ${loads}`,
        to: `a.loads ?? ${n}`,
      }],
      missing: [],
      cautions: s.notes,
    };
  }
  return {
    rule,
    title,
    status: "no-change",
    figures,
    decision: `lse-v2 stays (${
      pct(v2.medianMs, v1.medianMs)
    } vs lse-v1; no loads count faster); ${floor}`,
    edits: [],
    missing: [],
    cautions: s.notes,
  };
}

/** Rule 3: the controls (v10 not slower than v9, fused within 1.9 ms). Decides nothing on its own. */
export function ruleObrsControl(input: Input<ObrsSweep>): Decision {
  const rule = "obrs-control";
  const title =
    `controls: v10 not ${OBRS_FASTER * 100}% slower than v9, fused ≤ ${FUSED_CONTROL_MS} ms ` +
    "(else the restructure costs something: the Chunk struct and select chains first)";
  if (!has(input)) return cannotDecide(rule, title, problems(input));
  const s = input.data;
  const v9 = get(s, "v9"), v10 = get(s, "v10"), fused = get(s, "fused");
  const figures = [v9, v10, fused].filter((c) => c !== undefined).map((c) => caseFig(c));
  if (!v9 || !v10 || !fused) {
    const what = [["v9", v9], ["v10", v10], ["fused", fused]].filter(([, c]) => !c).map(([id]) =>
      id
    );
    return cannotDecide(rule, title, [`no k = 20 ${what.join(", ")} figure in the sweep`], figures);
  }
  const bad = [
    faster(v9.medianMs, v10.medianMs)
      ? `v10 is slower than v9 (${pct(v10.medianMs, v9.medianMs)})`
      : "",
    fused.medianMs > FUSED_CONTROL_MS
      ? `fused takes ${fused.medianMs.toFixed(3)} ms > ${FUSED_CONTROL_MS}`
      : "",
  ].filter(Boolean);
  return {
    rule,
    title,
    status: "info",
    figures,
    decision: bad.length
      ? `${
        bad.join("; ")
      }: the restructure costs something; the variants are still judged against v10/fused`
      : "controls hold: v10 is not slower than v9 and fused is within the last run's 1.9 ms",
    edits: [],
    missing: [],
    cautions: s.notes,
  };
}

function promotionEdits(
  opts: (typeof FUSED_VARIANTS)[number]["opts"],
  cur: CurrentDefaults,
): Edit[] {
  const q = (x: number | boolean | undefined) => (x === undefined ? "?" : String(x));
  const edits: Edit[] = [];
  if (opts.groups !== undefined) {
    edits.push(
      {
        file: "src/obrs/gpu/topk.ts",
        constant: "a.groups ?? N",
        from: `a.groups ?? ${q(cur.topkGroups)}`,
        to: `a.groups ?? ${opts.groups}`,
      },
      {
        file: "src/obrs/gpu/inputs.ts",
        constant: "topkGroups ?? N",
        from: `p.topkGroups ?? ${q(cur.topkGroups)}`,
        to: `p.topkGroups ?? ${opts.groups}`,
      },
    );
  }
  if (opts.uniformCount) {
    edits.push(
      {
        file: "src/obrs/gpu/topk.ts",
        constant: "UNIFORM_COUNT",
        from: "a.uniformCount ? 1 : 0",
        to: "(a.uniformCount ?? true) ? 1 : 0",
      },
      {
        file: "src/obrs/gpu/inputs.ts",
        constant: "topkUniformCount ?? B",
        from: `p.topkUniformCount ?? ${q(cur.topkUniformCount)}`,
        to: "p.topkUniformCount ?? true",
      },
    );
  }
  if (opts.segments !== undefined) {
    edits.push(
      {
        file: "src/obrs/gpu/topk.ts",
        constant: "a.segments ?? S",
        from: `a.segments ?? ${q(cur.topkSegments)}`,
        to: `a.segments ?? ${opts.segments}`,
      },
      {
        file: "src/obrs/gpu/inputs.ts",
        constant: "topkSegments ?? S",
        from: `p.topkSegments ?? ${q(cur.topkSegments)}`,
        to: `p.topkSegments ?? ${opts.segments}`,
      },
    );
  }
  return edits;
}

// The fused case that stands for `fusedId` at k = 1 and 64 (s2 and s8 are not run there: s4 is).
function proxyOf(fusedId: string): string {
  return fusedId === "fused-s2" || fusedId === "fused-s8" ? "fused-s4" : fusedId;
}

/**
 * Rules 4–6: the Jackpot weights' fastest `jackpot-*` variant becomes the default if it is faster
 * than `jackpot` and its fused pass is not slower than `fused` at k = 1 and k = 64; top-k alone
 * is reported beside it (rule 4 decides when they disagree); otherwise the defaults stay and the
 * figures say which hypotheses fell.
 */
export function ruleObrsFused(input: Input<ObrsSweep>, cur: CurrentDefaults): Decision {
  const rule = "obrs-fused-default";
  const title =
    `Jackpot weights: the fastest jackpot-* variant (${
      OBRS_FASTER * 100
    }% faster than jackpot, its fused pass ` +
    "not slower than fused at k = 1 and 64) has its options promoted to the defaults";
  if (!has(input)) return cannotDecide(rule, title, problems(input));
  const s = input.data;
  const wrong = new Set(s.wrong.map((w) => w.id));
  const base = get(s, "jackpot");
  const variants = s.cases.filter((c) =>
    c.k === 20 && c.id.startsWith("jackpot-") && c.id !== "jackpot-exactz"
  );
  const figures = [base, ...variants].filter((c) => c !== undefined).map((c) =>
    caseFig(
      c,
      c.medianMs <= JACKPOT_TARGET_MS
        ? `meets the ${JACKPOT_TARGET_MS} ms target`
        : `target ${JACKPOT_TARGET_MS} ms`,
    )
  );
  const topk = s.cases.filter((c) => c.k === 20 && /^v1[01](-|$)/.test(c.id));
  for (const c of topk) {
    figures.push(
      caseFig(
        c,
        c.medianMs <= TOPK_TARGET_MS
          ? `meets the ${TOPK_TARGET_MS} ms target`
          : `target ${TOPK_TARGET_MS} ms`,
      ),
    );
  }
  if (!base || variants.length === 0) {
    return cannotDecide(rule, title, [
      `no k = 20 ${!base ? "jackpot" : "jackpot-* variant"} figure in the sweep`,
    ], figures);
  }
  const cautions: string[] = [...s.notes];
  const v10 = get(s, "v10");
  const bestTopk = topk.filter((c) => !wrong.has(c.id)).reduce<ObrsCase | undefined>(
    (b, c) => (!b || c.medianMs < b.medianMs ? c : b),
    undefined,
  );
  const hyp = (suffix: string, what: string) => {
    const c = get(s, `jackpot-${suffix}`);
    return c
      ? `${suffix} ${faster(c.medianMs, base.medianMs) ? "faster" : "not faster"} (${what})`
      : "";
  };
  const splits = variants.filter((c) => /^jackpot-s\d+$/.test(c.id));
  const bestSplit = splits.reduce<ObrsCase | undefined>(
    (b, c) => (!b || c.medianMs < b.medianMs ? c : b),
    undefined,
  );
  const hypotheses = [
    hyp("g8", "per-chunk fixed cost"),
    hyp("uc", "barriers"),
    bestSplit
      ? `split ${
        faster(bestSplit.medianMs, base.medianMs) ? "faster" : "not faster"
      } (row length and tail)`
      : "",
  ].filter(Boolean).join("; ");
  const best = variants.filter((c) => !wrong.has(c.id.replace(/^jackpot/, "fused")))
    .reduce<ObrsCase | undefined>((b, c) => (!b || c.medianMs < b.medianMs ? c : b), undefined);
  const topkText = bestTopk && v10
    ? `top-k alone: fastest ${bestTopk.id} ${bestTopk.medianMs.toFixed(3)} ms (${
      pct(bestTopk.medianMs, v10.medianMs)
    } vs v10)`
    : "top-k alone: no v10 figure";
  if (!best || !faster(best.medianMs, base.medianMs)) {
    return {
      rule,
      title,
      status: "no-change",
      figures,
      decision:
        `no jackpot-* variant is ${OBRS_FASTER * 100}% faster than jackpot (${
          base.medianMs.toFixed(3)
        } ms): the defaults stay. ` +
        `Hypotheses: ${hypotheses || "none measured"}. ${topkText}`,
      edits: [],
      missing: [],
      cautions,
    };
  }
  const fusedId = best.id.replace(/^jackpot/, "fused");
  const proxy = proxyOf(fusedId);
  const missing: string[] = [];
  const slowerAt: string[] = [];
  for (const k of [1, 64]) {
    const f = get(s, "fused", k), v = get(s, proxy, k);
    if (!f || !v) {
      missing.push(
        `no k = ${k} ${
          !f ? "fused" : proxy
        } figure (bench/obrs/sweep.sh's k1 and k64 stages run it: stopped by their time ` +
          "limit, or a sweep older than its 'few' list?)",
      );
      continue;
    }
    figures.push(caseFig(f), caseFig(v, `${pct(v.medianMs, f.medianMs)} vs fused`));
    if (faster(f.medianMs, v.medianMs)) slowerAt.push(`k = ${k} (${pct(v.medianMs, f.medianMs)})`);
  }
  const lead = `${best.id} is fastest (${best.medianMs.toFixed(3)} ms, ${
    pct(best.medianMs, base.medianMs)
  } vs jackpot)`;
  if (missing.length) {
    return cannotDecide(rule, title, [`${lead}, but ${missing.join("; ")}`], figures, cautions);
  }
  if (slowerAt.length) {
    return {
      rule,
      title,
      status: "no-change",
      figures,
      decision: `${lead}, but ${proxy} is slower than fused at ${
        slowerAt.join(", ")
      }: not promoted. ${topkText}`,
      edits: [],
      missing: [],
      cautions,
    };
  }
  const variant = FUSED_VARIANTS.find((v) => v.id === fusedId);
  if (!variant) {
    return cannotDecide(rule, title, [
      `${lead}, but bench/obrs/versions.ts has no ${fusedId} to read its options from`,
    ], figures);
  }
  const topkId = fusedId.replace(/^fused/, "v10").replace(/^v10-s(\d)/, "v11-s$1");
  if (bestTopk && bestTopk.id !== topkId) {
    cautions.push(
      `top-k alone prefers ${bestTopk.id}, the Jackpot weights ${best.id}: the Jackpot weights decide (rule 5)`,
    );
  }
  return {
    rule,
    title,
    status: "change",
    figures,
    decision:
      `${lead} and ${proxy} is not slower than fused at k = 1 and 64: promote ${
        JSON.stringify(variant.opts)
      }; ` +
      `then record the H100 ms in bench/obrs/versions.ts (v10/v11 entries). Hypotheses: ${hypotheses}. ${topkText}`,
    edits: promotionEdits(variant.opts, cur),
    missing: [],
    cautions,
  };
}
