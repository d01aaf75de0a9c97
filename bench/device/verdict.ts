/**
 * The decisions a GPU run must make, from its outputs: every rule of BENCHMARKS.md ("Next GPU
 * run" and the sessions after it), bench/matmul/README.md and bench/obrs/README.md applied to the
 * JSON and logs of `bash bench/device/run.sh sweep|fusion|defer $OUT`, one block per rule: the
 * rule, the figures it used (units, file), the decision, and the exact edit (file, constant,
 * old → new), "no change", or "cannot decide: <what is missing>".
 *
 * ```sh
 * deno run -A bench/device/verdict.ts $OUT                          # a stage's OUT folder
 * deno run -A bench/device/verdict.ts sweep-out fusion-out defer-out # several (later ones win)
 * deno run -A bench/device/verdict.ts $OUT/results.tar.gz --json verdict.json
 * deno run -A bench/device/verdict.ts bench/results/h100-2026-11-23 # an extracted results tree
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { benchInt, type BenchOption, benchUsage, benchUsageError } from "../args.ts";
import type { Decision, Figure } from "./decision.ts";
import { type CurrentDefaults, readDefaults } from "./defaults.ts";
import type { VerdictInputs } from "./files.ts";
import { collectFiles, loadInputs } from "./inputs.ts";
import { ruleProfile, ruleRowKernels, ruleSwigluDown } from "./rules.ts";
import { ruleAttention, ruleDefer } from "./rules_nn.ts";
import { ruleAddRms } from "./rules_add_rms.ts";
import { ruleObrsControl, ruleObrsFused, ruleObrsLse, ruleObrsWrong } from "./rules_obrs.ts";
import { ruleSkinnyDecode, ruleSkinnyReduce, ruleSkinnyVariants } from "./rules_skinny.ts";

/** Every rule, in the order a run's stages produce their inputs. */
export const RULES: ReadonlyArray<
  {
    rule: string;
    title: string;
    apply: (x: VerdictInputs, cur: CurrentDefaults, top: number) => Decision;
  }
> = [
  {
    rule: "row-kernels",
    title: "row kernels ≥ 80% of copy",
    apply: (x, c) => ruleRowKernels(x.tensor, c),
  },
  {
    rule: "skinny-decode",
    title: "v14 vs tiles per decode step",
    apply: (x, c) => ruleSkinnyDecode(x.matmulDecode, c),
  },
  {
    rule: "skinny-reduce",
    title: "v15 vs v14 → reduceUs",
    apply: (x, c) => ruleSkinnyReduce(x.matmulDecode, c),
  },
  {
    rule: "skinny-variants",
    title: "v16–v18 vs v14",
    apply: (x) => ruleSkinnyVariants(x.matmulDecode),
  },
  { rule: "obrs-wrong", title: "OBRS WRONG cases", apply: (x) => ruleObrsWrong(x.obrs) },
  { rule: "obrs-lse", title: "OBRS log-sum-exp", apply: (x, c) => ruleObrsLse(x.obrs, c) },
  { rule: "obrs-control", title: "OBRS controls", apply: (x) => ruleObrsControl(x.obrs) },
  {
    rule: "obrs-fused-default",
    title: "OBRS fused-pass defaults",
    apply: (x, c) => ruleObrsFused(x.obrs, c),
  },
  {
    rule: "swiglu-down",
    title: "fused SwiGLU down projection",
    apply: (x, c) => ruleSwigluDown(x.swigluDown, c),
  },
  {
    rule: "attention-auto",
    title: "AUTO_FLASH_MAX_WORK",
    apply: (x, c) => ruleAttention(x.transformerComposed, x.transformerAuto, x.attention, c),
  },
  {
    rule: "defer-split",
    title: "GRAD_SUMS_SPLIT_MAX_BYTES",
    apply: (x, c) => ruleDefer(x.transformerDefer0, x.transformerAuto, x.transformerDefer64, c),
  },
  {
    rule: "add-rms",
    title: "ADD_RMS_FUSED_MAX_K",
    apply: (x, c) => ruleAddRms(x.addRms, c),
  },
  { rule: "profile", title: "profile summary", apply: (x, _c, top) => ruleProfile(x.profile, top) },
];

/**
 * Every rule's decision; a rule that throws on an input it did not expect becomes a "cannot
 * decide" naming the error, so one odd file never hides the other verdicts.
 */
export function decideAll(inputs: VerdictInputs, cur: CurrentDefaults, top = 5): Decision[] {
  return RULES.map((r) => {
    try {
      return r.apply(inputs, cur, top);
    } catch (e) {
      const why = `the rule failed on its input (${e instanceof Error ? e.message : String(e)})`;
      return {
        rule: r.rule,
        title: r.title,
        status: "cannot-decide" as const,
        figures: [],
        decision: `cannot decide: ${why}`,
        edits: [],
        missing: [why],
        cautions: [],
      };
    }
  });
}

function value(f: Figure): string {
  if (!Number.isFinite(f.value)) return "—";
  const v = f.value;
  const text = /ms/.test(f.unit)
    ? v.toFixed(3)
    : /µs|%/.test(f.unit)
    ? v.toFixed(1)
    : Number.isInteger(v)
    ? v.toLocaleString("en-US")
    : v.toPrecision(4);
  return f.unit ? `${text} ${f.unit}` : text;
}

const LABEL: Record<Decision["status"], string> = {
  "change": "CHANGE",
  "no-change": "no change",
  "cannot-decide": "CANNOT DECIDE",
  "info": "info",
};

/** One decision as a text block: rule, figures grouped by file, decision, edits, cautions. */
export function formatDecision(d: Decision): string {
  const out = [`== ${d.rule} [${LABEL[d.status]}]`, `rule:     ${d.title}`];
  if (d.figures.length) out.push("figures:");
  let file = "";
  for (const f of d.figures) {
    if (f.file !== file) out.push(`  (${(file = f.file)})`);
    out.push(`    ${f.name}: ${value(f)}${f.note ? `  [${f.note}]` : ""}`);
  }
  out.push(`decision: ${d.decision}`);
  for (const e of d.edits) out.push(`edit:     ${e.file}  ${e.constant}: ${e.from} → ${e.to}`);
  if (d.status === "no-change") out.push("edit:     no change");
  for (const c of d.cautions) out.push(`caution:  ${c}`);
  return out.join("\n");
}

/** The closing summary: every edit to make, and the rules that could not decide. */
export function formatSummary(ds: Decision[]): string {
  const edits = ds.flatMap((d) =>
    d.edits.map((e) => `  ${d.rule}: ${e.file}  ${e.constant}: ${e.from} → ${e.to}`)
  );
  const open = ds.filter((d) => d.status === "cannot-decide").map((d) => d.rule);
  return [
    `== summary: ${edits.length} edit(s); ${
      ds.filter((d) => d.status === "no-change").length
    } rule(s) keep the defaults; ` +
    `${open.length} cannot decide${open.length ? ` (${open.join(", ")})` : ""}`,
    ...edits,
  ].join("\n");
}

const SCRIPT = "bench/device/verdict.ts";
const SUMMARY = "Applies the decision rules of a GPU run (BENCHMARKS.md, bench/matmul/README.md, " +
  "bench/obrs/README.md) to its outputs.\nArguments: DIR… — stage OUT folders, extracted results " +
  "trees or results.tar.gz files (later ones win).";
const OPTIONS: Record<string, BenchOption> = {
  json: {
    type: "string",
    help: "also write the decisions as JSON to this file ('-': stdout, text off)",
  },
  top: { type: "string", default: "5", help: "kernels per anchor in the profile summary" },
};

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: { json: { type: "string" }, top: { type: "string" }, help: { type: "boolean" } },
      allowPositionals: true,
    });
  } catch (e) {
    const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    benchUsageError(SCRIPT, unknown ? `unknown option '${unknown[1]}'` : message);
  }
  if (parsed.values.help) {
    console.log(benchUsage(`deno run -A ${SCRIPT} DIR…`, SUMMARY, OPTIONS));
    Deno.exit(0);
  }
  const top = benchInt(SCRIPT, parsed.values, "top", 5, { min: 1 });
  if (parsed.positionals.length === 0) {
    benchUsageError(SCRIPT, "name at least one DIR or results.tar.gz");
  }
  let collected;
  try {
    collected = await collectFiles(parsed.positionals);
  } catch (e) {
    benchUsageError(SCRIPT, e instanceof Error ? e.message : String(e));
  }
  try {
    const notes = [...collected.notes];
    const inputs = loadInputs(collected.files, notes);
    const decisions = decideAll(inputs, readDefaults(), top);
    const json = parsed.values.json;
    if (json !== "-") {
      console.log(`verdict on ${parsed.positionals.join(", ")} (${collected.files.length} files)`);
      for (const n of notes) console.log(`note: ${n}`);
      for (const d of decisions) console.log(`\n${formatDecision(d)}`);
      console.log(`\n${formatSummary(decisions)}`);
    }
    if (json !== undefined) {
      const text = JSON.stringify({ inputs: parsed.positionals, notes, decisions }, null, 2) + "\n";
      if (json === "-") console.log(text.trimEnd());
      else Deno.writeTextFileSync(json, text);
    }
  } finally {
    collected.cleanup();
  }
}
