/**
 * `jackpot sweep` end to end on a tiny plan: it pre-trains once, runs every run into its folder,
 * aggregates each group over seeds (checked against the runs' own tables), resumes without
 * re-running finished runs, runs one array index alone, prints the scheduler's commands, and
 * refuses a different plan in the same folder.
 */
import assert from "node:assert/strict";
import { runCli } from "../src/cli/main.ts";
import { quietly } from "./cli_util.ts";
import { studentTQuantile } from "../src/sweep/stats.ts";

const PLAN = {
  name: "tiny",
  description: "two modes, two seeds, two iterations",
  pretrain: {
    policy: { model: "tiny", steps: 4, "eval-every": 4, "eval-size": 8, target: 0 },
    actor: { model: "tiny:layers=1", steps: 2, "eval-every": 2, "eval-size": 8, target: 0 },
  },
  rl: {
    iterations: 2,
    prompts: 2,
    "group-size": 4,
    minibatch: 4,
    "eval-size": 8,
    "eval-every": 1,
    "lr-policy": 1e-3,
    "lr-actor": 1e-3,
  },
  axes: { mode: ["tis", "jackpot"] },
  seeds: [1, 2],
  baseline: "mode=jackpot",
};

type Row = Record<string, number | string | null>;
const readJson = async (p: string) => JSON.parse(await Deno.readTextFile(p));
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

Deno.test("jackpot sweep: pre-train, run, aggregate over seeds, resume", async () => {
  const dir = await Deno.makeTempDir();
  const plan = `${dir}/plan-in.json`;
  await Deno.writeTextFile(plan, JSON.stringify(PLAN));
  const out = `${dir}/sweep`;
  try {
    const first = await quietly(() => runCli(["sweep", "--plan", plan, "--out", out, "--quiet"]));
    assert.equal(first.value, 0, first.err);
    for (
      const f of ["plan.json", "sweep.json", "index.html", "pretrained/policy/model/config.json"]
    ) {
      assert.ok(await exists(`${out}/${f}`), f);
    }
    const ids = [
      "mode-tis_seed-1",
      "mode-tis_seed-2",
      "mode-jackpot_seed-1",
      "mode-jackpot_seed-2",
    ];
    for (const id of ids) assert.ok(await exists(`${out}/runs/${id}/config.json`), id);
    // runs start from the pre-trained models
    const cfg = await readJson(`${out}/runs/mode-tis_seed-1/config.json`);
    assert.equal(cfg.config.policy, `${out}/pretrained/policy/model`);
    assert.equal(cfg.config.actor, `${out}/pretrained/actor/model`);
    assert.equal(cfg.config.trainer.seed, 1);

    // The curves are the per-rollouts mean over seeds of the runs' own iteration tables.
    const curves: Row[] = await readJson(`${out}/summary/curves.json`);
    for (const mode of ["tis", "jackpot"]) {
      const runs = await Promise.all(
        [1, 2].map((s) => readJson(`${out}/runs/mode-${mode}_seed-${s}/iterations.json`)),
      );
      for (let it = 0; it < 2; it++) {
        const row = curves.find((r) => r.group === `mode=${mode}` && r.rollouts === (it + 1) * 8);
        assert.ok(row, `mode=${mode} iteration ${it}`);
        for (const m of ["reward", "k3", "accept_rate"]) {
          const xs = runs.map((r: Row[]) => r[it][m] as number);
          const mean = (xs[0] + xs[1]) / 2;
          assert.ok(Math.abs((row[`${m}_mean`] as number) - mean) <= 1e-12, `${m} mean`);
          const sd = Math.abs(xs[0] - xs[1]) / Math.SQRT2;
          assert.ok(Math.abs((row[`${m}_std`] as number) - sd) <= 1e-12, `${m} std`);
          assert.equal(row.n, 2);
          // the 95% t-interval (1 degree of freedom), clipped to [0, 1] for the fractions
          const half = studentTQuantile(0.975, 1) * sd / Math.SQRT2;
          const fraction = m !== "k3";
          const lo = fraction ? Math.max(0, mean - half) : mean - half;
          const hi = fraction ? Math.min(1, mean + half) : mean + half;
          assert.ok(Math.abs((row[`${m}_lo`] as number) - lo) <= 1e-9, `${m} lo`);
          assert.ok(Math.abs((row[`${m}_hi`] as number) - hi) <= 1e-9, `${m} hi`);
        }
      }
    }
    const final: Row[] = await readJson(`${out}/summary/final.json`);
    assert.deepEqual(final.map((r) => r.group).sort(), ["mode=jackpot", "mode=tis"]);
    for (const r of final) {
      const accs = await Promise.all([1, 2].map(async (s) => {
        const evals: Row[] = await readJson(
          `${out}/runs/${String(r.group).replace("=", "-")}_seed-${s}/evals.json`,
        );
        return evals[evals.length - 1].policy_accuracy as number;
      }));
      assert.ok(Math.abs((r.policy_accuracy_mean as number) - (accs[0] + accs[1]) / 2) < 1e-12);
    }
    // Each mode against the baseline, unpaired and paired by seed, from the runs' last evaluations.
    const comparisons: Row[] = await readJson(`${out}/summary/comparisons.json`);
    assert.deepEqual(comparisons.map((r) => r.group), ["mode=tis"]);
    const lastAcc = async (mode: string, s: number) => {
      const evals: Row[] = await readJson(`${out}/runs/mode-${mode}_seed-${s}/evals.json`);
      return evals[evals.length - 1].policy_accuracy as number;
    };
    const diffs = await Promise.all(
      [1, 2].map(async (s) => (await lastAcc("tis", s)) - (await lastAcc("jackpot", s))),
    );
    const [c] = comparisons;
    assert.equal(c.paired_n, 2);
    assert.ok(Math.abs((c.paired_diff as number) - (diffs[0] + diffs[1]) / 2) < 1e-12);
    assert.ok(Math.abs((c.diff as number) - (c.paired_diff as number)) < 1e-12, "all seeds paired");
    if (Math.abs(diffs[0] - diffs[1]) < 1e-12) assert.equal(c.paired_p, null, "equal differences");
    else {
      // One degree of freedom: p = 1 − (2/π) atan |t| with t = mean / (|d₁ − d₂| / 2).
      const t = Math.abs((diffs[0] + diffs[1]) / (diffs[0] - diffs[1]));
      assert.ok(Math.abs((c.paired_p as number) - (1 - (2 / Math.PI) * Math.atan(t))) < 1e-12);
    }
    assert.equal(c.paired_p_holm, c.paired_p, "one comparison: Holm changes nothing");
    const csvHeader = (await Deno.readTextFile(`${out}/summary/comparisons.csv`)).split("\n")[0];
    for (const col of ["p", "p_holm", "paired_n", "paired_diff", "paired_p", "paired_p_holm"]) {
      assert.ok(csvHeader.split(",").includes(col), `comparisons.csv lacks ${col}: ${csvHeader}`);
    }
    assert.match(await Deno.readTextFile(`${out}/index.html`), /paired: p \(Holm\)/);
    assert.match(await Deno.readTextFile(`${out}/index.html`), /<svg/);

    // Running it again keeps every finished run (and the pre-training).
    const before = (await Deno.stat(`${out}/runs/mode-tis_seed-1/config.json`)).mtime?.getTime();
    const again = await quietly(() => runCli(["sweep", "--out", out]));
    assert.equal(again.value, 0, again.err);
    assert.match(again.out, /pretrained\/policy: done before, kept/);
    assert.doesNotMatch(again.out, /run \d+\/4/);
    const after = (await Deno.stat(`${out}/runs/mode-tis_seed-1/config.json`)).mtime?.getTime();
    assert.equal(after, before);

    // An unfinished run (no config.json) is run again by --index alone, and only it.
    await Deno.remove(`${out}/runs/mode-jackpot_seed-2/config.json`);
    await Deno.remove(`${out}/sweep.json`);
    const one = await quietly(() => runCli(["sweep", "--out", out, "--index", "3"]));
    assert.equal(one.value, 0, one.err);
    assert.match(one.out, /run 4\/4: mode-jackpot_seed-2/);
    assert.equal((one.out.match(/run \d\/4/g) ?? []).length, 1);
    assert.ok(await exists(`${out}/runs/mode-jackpot_seed-2/config.json`));
    assert.equal(await exists(`${out}/sweep.json`), false, "an array index does not report");
    const report = await quietly(() => runCli(["sweep", "--out", out, "--stage", "report"]));
    assert.equal(report.value, 0, report.err);
    assert.match(report.out, /Against mode=jackpot, in points: mode=tis Welch [+−]\d/);
    assert.match(report.out, /paired over 2 seeds/);
    assert.ok(await exists(`${out}/sweep.json`));

    // The tiny runs may all score the same; with set final accuracies both tests are numbers.
    // tis − jackpot per seed: 0.25 and 0.125, so the paired t = 0.1875 / 0.0625 = 3 with 1 df.
    const set = { tis: [0.5, 0.75], jackpot: [0.25, 0.625] };
    for (const [mode, accs] of Object.entries(set)) {
      for (const [i, acc] of accs.entries()) {
        const path = `${out}/runs/mode-${mode}_seed-${i + 1}/evals.json`;
        const evals: Row[] = await readJson(path);
        evals[evals.length - 1].policy_accuracy = acc;
        await Deno.writeTextFile(path, JSON.stringify(evals));
      }
    }
    const again2 = await quietly(() => runCli(["sweep", "--out", out, "--stage", "report"]));
    assert.equal(again2.value, 0, again2.err);
    const [set2] = (await readJson(`${out}/summary/comparisons.json`)) as Row[];
    const pairedP = 1 - (2 / Math.PI) * Math.atan(3);
    assert.ok(Math.abs((set2.paired_t as number) - 3) < 1e-12, `paired t ${set2.paired_t}`);
    assert.ok(Math.abs((set2.paired_p as number) - pairedP) < 1e-12, `paired p ${set2.paired_p}`);
    assert.equal(typeof set2.p, "number");
    assert.match(
      again2.out,
      new RegExp(
        `mode=tis Welch \\+18\\.8, p 0\\.\\d{3}; paired over 2 seeds \\+18\\.8, p ${
          pairedP.toFixed(3).replace(".", "\\.")
        }`,
      ),
    );
    assert.match(await Deno.readTextFile(`${out}/index.html`), /\+18\.8 \[−\d+\.\d, \+\d+\.\d\]/);

    // --list prints the scheduler's commands
    const list = await quietly(() => runCli(["sweep", "--out", out, "--list"]));
    assert.equal(list.value, 0);
    assert.match(list.out, /--stage pretrain\n/);
    assert.match(list.out, /--index 0 {3}# mode-tis_seed-1\n/);
    assert.match(list.out, /--stage report\n/);

    // a different plan in the same folder is refused
    const other = await quietly(() =>
      runCli(["sweep", "--plan", plan, "--seeds", "1,2,3", "--out", out, "--quiet"])
    );
    assert.equal(other.value, 2);
    assert.match(other.err, /holds a different plan/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("jackpot sweep refuses bad options and plans with exit code 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = `${dir}/bad.json`;
    const { baseline: _, ...noBaseline } = PLAN;
    await Deno.writeTextFile(
      bad,
      JSON.stringify({ ...noBaseline, axes: { mode: ["tis", "nope"] } }),
    );
    const notJson = `${dir}/not.json`;
    await Deno.writeTextFile(notJson, "{ name: ");
    const cases: Array<[string[], RegExp]> = [
      [["--preset", "nosuch"], /--preset must be one of fig4/],
      [["--plan", `${dir}/missing.json`], /--plan .*missing.json/],
      [["--plan", notJson], /is not valid JSON/],
      [["--plan", bad], /run mode-nope_seed-1: --mode must be one of/],
      [["--preset", "fig4", "--plan", bad], /not both/],
      [["--seeds", "1,x"], /--seeds must list integers/],
      [["--set", "bogus=1"], /--set: 'bogus=1'/],
      [["--set", "lambda=0"], /--lambda must be > 0/],
      [["--preset", "fig4", "--index", "99"], /--index must be <= 11/],
      [["--stage", "later"], /--stage must be one of/],
      [
        ["--preset", "fig4", "--stage", "report", "--index", "1"],
        /does not go with --stage report/,
      ],
    ];
    for (const [args, re] of cases) {
      const out = `${dir}/never`;
      const r = await quietly(() => runCli(["sweep", "--out", out, "--quiet", ...args]));
      assert.equal(r.value, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, re, args.join(" "));
      assert.ok(!r.err.includes("    at "), `a stack trace for ${args.join(" ")}`);
      assert.equal(await exists(out), false, args.join(" "));
    }
    // a non-empty folder that is not a sweep folder is refused
    await Deno.writeTextFile(`${dir}/file.txt`, "x");
    const r = await quietly(() => runCli(["sweep", "--out", dir, "--list"]));
    assert.equal(r.value, 2);
    assert.match(r.err, /not empty and holds no plan.json/);
    // a later stage of a sweep never started (a mistyped --out) is refused, and writes nothing
    for (const args of [["--stage", "report"], ["--index", "0"], ["--stage", "runs"]]) {
      const later = await quietly(() => runCli(["sweep", "--out", `${dir}/typo`, ...args]));
      assert.equal(later.value, 2, args.join(" "));
      assert.match(later.err, /holds no plan.json, so there is no sweep to continue/);
      assert.equal(await exists(`${dir}/typo`), false);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
