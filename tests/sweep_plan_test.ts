/**
 * Sweep plans: shorthands and canonical form agree, the grid expands in order with the right
 * options and folder names, overrides reach every run, the presets are valid `jackpot rl` runs,
 * and bad plans are refused with a message naming the field.
 */
import assert from "node:assert/strict";
import {
  expandSweep,
  optionArgs,
  parseSweepPlan,
  SweepPlanError,
  withOverrides,
} from "../src/sweep/plan.ts";
import { SWEEP_PRESET_NAMES, SWEEP_PRESETS } from "../src/sweep/presets.ts";
import { rlRunConfigOf, validatePlan } from "../src/cli/commands/sweep_run.ts";
import { parseOverrides, schedulerCommands } from "../src/cli/commands/sweep.ts";
import { UsageError } from "../src/cli/command.ts";

const PLAN = {
  name: "grid",
  rl: { iterations: 4, prompts: 2, minibatch: 8, "allow-uncorrected": true },
  axes: {
    mode: ["tis", "jackpot"],
    staleness: { "1x": { prompts: 1, minibatch: 8 }, "4x": { prompts: 4, minibatch: 8 } },
  },
  seeds: [3, 1],
  baseline: "mode=jackpot staleness=4x",
};

Deno.test("a plan expands into axes × seeds, last axis fastest, options layered", () => {
  const plan = parseSweepPlan(PLAN);
  const runs = expandSweep(plan);
  assert.equal(runs.length, 2 * 2 * 2);
  const expected: string[] = [];
  for (const m of ["tis", "jackpot"]) {
    for (const s of ["1x", "4x"]) {
      for (const seed of [3, 1]) expected.push(`mode-${m}_staleness-${s}_seed-${seed}`);
    }
  }
  assert.deepEqual(runs.map((r) => r.id), expected);
  assert.deepEqual(runs.map((r) => r.index), [...runs.keys()]);
  const r = runs[3]; // tis, 4x, seed 1
  assert.equal(r.groupLabel, "mode=tis staleness=4x");
  assert.deepEqual(r.group, { mode: "tis", staleness: "4x" });
  // the axis overrides the base prompts; numbers become strings; the seed is the run's
  assert.deepEqual(r.options, {
    iterations: "4",
    prompts: "4",
    minibatch: "8",
    "allow-uncorrected": true,
    mode: "tis",
    seed: "1",
  });
  assert.deepEqual(optionArgs(r.options).slice(0, 2), ["--iterations=4", "--prompts=4"]);
  assert.ok(optionArgs(r.options).includes("--allow-uncorrected"));
  // canonical form round-trips through JSON
  const again = parseSweepPlan(JSON.parse(JSON.stringify(plan)));
  assert.deepEqual(again, plan);
  assert.deepEqual(expandSweep(again), runs);
});

Deno.test("--set overrides reach every run, axes included; switches turn off with false", () => {
  const plan = withOverrides(parseSweepPlan(PLAN), {
    prompts: "5",
    "allow-uncorrected": "false",
    lambda: "2",
  });
  for (const r of expandSweep(plan)) {
    assert.equal(r.options.prompts, "5");
    assert.equal(r.options.lambda, "2");
    assert.equal("allow-uncorrected" in r.options, false);
    assert.equal(r.options.minibatch, "8"); // untouched
  }
  assert.throws(() => withOverrides(parseSweepPlan(PLAN), { seed: "3" }), /set by the sweep/);
  // a value with commas (a task spec) survives --set's comma split
  assert.deepEqual(parseOverrides("iterations=3,task=arithmetic:maxDigits=2,ops=+-,lambda=1.5"), {
    iterations: "3",
    task: "arithmetic:maxDigits=2,ops=+-",
    lambda: "1.5",
  });
  assert.throws(() => parseOverrides("nosuch=1"), UsageError);
});

Deno.test("every preset is a valid set of jackpot rl runs from its pre-trained models", async () => {
  for (const name of SWEEP_PRESET_NAMES) {
    const plan = SWEEP_PRESETS[name];
    await validatePlan(plan, "/tmp/sweep-x");
    const runs = expandSweep(plan);
    assert.ok(runs.length >= plan.seeds.length * 2, name);
    assert.ok(plan.seeds.length >= 3, `${name}: error bars need seeds`);
    for (const r of runs) {
      const c = await rlRunConfigOf(plan, r, "/tmp/sweep-x");
      assert.equal(c.policy, "/tmp/sweep-x/pretrained/policy/model");
      assert.equal(c.trainer.seed, r.seed);
    }
    const commands = schedulerCommands(plan, "/tmp/sweep-x");
    assert.equal(commands.length, runs.length + 2, name);
    assert.match(commands[0], /--stage pretrain$/);
    assert.match(commands[commands.length - 1], /--stage report$/);
  }
  // the staleness preset keeps the rollouts and optimizer steps of its groups equal
  const st = await Promise.all(
    expandSweep(SWEEP_PRESETS.staleness).map((r) =>
      rlRunConfigOf(SWEEP_PRESETS.staleness, r, "/s")
    ),
  );
  const rollouts = new Set(st.map((c) => c.iterations * c.trainer.prompts * c.trainer.groupSize));
  const steps = new Set(
    st.map((c) => c.iterations * c.trainer.prompts * c.trainer.groupSize / c.trainer.minibatch),
  );
  assert.deepEqual([...rollouts], [1024]);
  assert.deepEqual([...steps], [64]);
});

Deno.test("bad plans are refused with the field named", async () => {
  const cases: Array<[unknown, RegExp]> = [
    [[], /must be a JSON object/],
    [{ ...PLAN, extra: 1 }, /unknown plan field 'extra'/],
    [{ ...PLAN, name: "a b" }, /name must be a short label/],
    [{ ...PLAN, rl: { "--mode": "tis" } }, /without its dashes/],
    [{ ...PLAN, rl: { out: "x" } }, /'out' is set by the sweep itself/],
    [{ ...PLAN, rl: { seed: 1 } }, /use the plan's seeds/],
    [{ ...PLAN, rl: { lambda: null } }, /rl.lambda must be a string/],
    [{ ...PLAN, axes: { mode: [] } }, /axes.mode has no values/],
    [{ ...PLAN, axes: { mode: ["tis", "tis"] } }, /label 'tis' repeats/],
    [{ ...PLAN, axes: { mode: ["a/b"] } }, /label 'a\/b' must start/],
    [
      { ...PLAN, axes: { mode: ["tis"], other: { x: { mode: "jackpot" } } } },
      /both set option 'mode'/,
    ],
    [{ ...PLAN, seeds: [] }, /seeds must be a non-empty list/],
    [{ ...PLAN, seeds: [1, 1] }, /seeds repeat/],
    [{ ...PLAN, seeds: [-1] }, /seeds must be/],
    [
      { ...PLAN, baseline: "mode=nope" },
      /baseline must be one of the groups: mode=tis staleness=1x/,
    ],
    [{ ...PLAN, pretrain: { critic: {} } }, /only policy and actor/],
    [{ ...PLAN, pretrain: { policy: { task: "x" } } }, /learn the runs' task/],
    [{ ...PLAN, rl: { policy: "p" }, pretrain: { policy: {} } }, /both set the policy/],
  ];
  const { baseline: _, ...noBaseline } = PLAN;
  cases.push(
    [{ ...noBaseline, axes: [{ name: "mode", values: [] }] }, /axes.mode has no values/],
    [{ ...noBaseline, axes: [{ values: [] }] }, /axes\[0\] needs a name/],
    [
      {
        ...noBaseline,
        axes: [{ name: "m", values: [{ label: "a", options: {} }] }, {
          name: "m",
          values: [{ label: "b", options: {} }],
        }],
      },
      /axis m appears twice/,
    ],
  );
  for (const [raw, re] of cases) {
    assert.throws(() => parseSweepPlan(raw), (e: Error) => {
      assert.ok(e instanceof SweepPlanError, `${JSON.stringify(raw)}: ${e}`);
      assert.match(e.message, re);
      return true;
    });
  }
  // an rl option the command refuses is found before anything runs, naming the run
  const bad = parseSweepPlan({ ...noBaseline, axes: { mode: ["tis", "bogus"] } });
  await assert.rejects(
    () => validatePlan(bad, "/tmp/x"),
    /run mode-bogus_seed-3: --mode must be one of/,
  );
  const badPre = parseSweepPlan({ ...PLAN, pretrain: { actor: { model: "nosuch" } } });
  await assert.rejects(() => validatePlan(badPre, "/tmp/x"), /pretrain.actor: /);
  const badTarget = parseSweepPlan({ ...PLAN, pretrain: { actor: { target: 2 } } });
  await assert.rejects(
    () => validatePlan(badTarget, "/tmp/x"),
    /pretrain.actor: --target must be <= 1/,
  );
});
