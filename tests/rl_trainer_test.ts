/**
 * The joint RL trainer (src/rl/trainer.ts) end to end on a toy task and two tiny models:
 * - every non-OBRS mode's losses (policy PPO term, the rollout model's PPO and distillation, the
 *   joint loss) against float64 references built from the float64 forward of both models;
 * - SPEC §10's sanity run: at learning rate 0 every ratio is exactly 1, iteration after iteration,
 *   with rows of several prompt lengths and two stale mini-batches; GPU memory is flat;
 * - each mode's weights (modeWeights) against the float64 baselines on random logits;
 * - Jackpot learns the toy task; configurations it must refuse are refused with their reason.
 */
import assert from "node:assert/strict";
import { initTensors, readAll, runtime, tensor, tidy } from "../src/tensor/mod.ts";
import { noGrad } from "../src/autograd/mod.ts";
import { Transformer } from "../src/nn/transformer.ts";
import { logSoftmax } from "../src/obrs/reference/mod.ts";
import { baselineWeights } from "../src/obrs/reference/baselines.ts";
import { jackpotTensors, jackpotTensorsLive } from "../src/rl/jackpot_tensors.ts";
import { modeWeights, RL_MODE_NAMES, type RlMode } from "../src/rl/modes.ts";
import { RlTrainer } from "../src/rl/trainer.ts";
import { resolveRlConfig, RlConfigError } from "../src/rl/trainer_config.ts";
import { Rng } from "../src/util/rng.ts";
import { assertNoGpuErrors } from "./autograd_util.ts";
import {
  baselineSpec,
  completionLogitsRef,
  disposeRun,
  hostParams,
  stepLossRef,
  TOY_POLICY,
  toyModels,
  toyTask,
} from "./rl_trainer_util.ts";

const SMALL = { prompts: 3, groupSize: 4, minibatch: 6, maxNew: 4, captureK: 6, k: 4 };

function relErr(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(1e-6, Math.abs(b));
}

// |a − b| relative to b, or absolute below 0.05: a loss whose advantages nearly cancel (a GRPO
// batch's sum to 0) is ~1e-7 in f32 and its relative error would measure only rounding
function lossErr(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(0.05, Math.abs(b));
}

Deno.test("rl trainer: each non-OBRS mode's losses against float64, from the float64 forward of both models", async () => {
  await initTensors();
  const lines: string[] = [];
  const cases: [RlMode, Record<string, number>][] = [
    ["on-policy", {}],
    ["tis", { temperature: 0.7 }],
    ["is", {}],
    ["icepop", { icepopLow: 0.3, icepopHigh: 2.5 }],
    ["no-clip", {}],
    ["no-correction", {}],
  ];
  for (const [mode, extra] of cases) {
    const { policy, actor } = toyModels(5);
    const onPolicy = mode === "on-policy";
    const trainer = new RlTrainer({
      task: toyTask,
      policy,
      actor: onPolicy ? null : actor,
      config: {
        ...SMALL,
        ...extra,
        mode,
        allowUncorrected: true,
        lrPolicy: 0,
        lrActor: 0,
        distill: 0.3,
        seed: 3,
      },
    });
    const log = await trainer.iterate();
    // lr 0: the models did not move, so iteration 0's rollout comes back identical
    const data = await trainer.rollout(0);
    const pP = await hostParams(policy), pA = onPolicy ? null : await hostParams(actor);
    for (const s of log.steps) {
      const r0 = s.minibatch * SMALL.minibatch, r1 = r0 + SMALL.minibatch;
      const lP = completionLogitsRef(policy, pP, data, r0, r1);
      const lA = pA ? completionLogitsRef(actor, pA, data, r0, r1) : null;
      const ref = stepLossRef(trainer.config, data, r0, r1, lP, lA);
      const errs = [lossErr(s.policy.loss, ref.policy), lossErr(s.loss, ref.joint)];
      if (ref.actor !== null) errs.push(lossErr(s.actor!.loss, ref.actor));
      if (ref.distill !== null) errs.push(lossErr(s.distill!.loss, ref.distill));
      const e = Math.max(...errs);
      lines.push(
        `${mode} mb ${s.minibatch}: loss ${s.loss.toFixed(5)} (ref ${ref.joint.toFixed(5)}), ` +
          `policy ${s.policy.loss.toFixed(5)}, err ${e.toExponential(1)}`,
      );
      assert.ok(e < 2e-5, `${mode} mini-batch ${s.minibatch}: err ${e}`);
      assert.equal(s.actor === null, onPolicy);
      assert.equal(s.jackpot === null, onPolicy);
    }
    assert.equal(log.steps.length, 2);
    // a policy term of 0 (flat groups, every token masked) would check nothing of the weights
    assert.ok(
      log.steps.some((s) => Math.abs(s.policy.loss) > 1e-3),
      `${mode}: every mini-batch's policy term is 0`,
    );
    data.rollout.prompts.forEach((p, b) => assert.equal(p.length, data.rollout.prompts[b].length));
    disposeRun(trainer, policy, actor);
  }
  console.log(lines.join("\n"));
  assertNoGpuErrors();
});

Deno.test("rl trainer: lr 0 keeps every ratio exactly 1 in every mode and stale mini-batch; GPU memory is flat", async () => {
  const rt = await initTensors();
  for (const mode of ["jackpot", "jackpot-no-clip", "mask-only", "tis"] as RlMode[]) {
    const { policy, actor } = toyModels(9);
    const trainer = new RlTrainer({
      task: toyTask,
      policy,
      actor,
      config: { ...SMALL, minibatch: 4, mode, lrPolicy: 0, lrActor: 0, seed: 4 },
    });
    const live = jackpotTensorsLive();
    const pool: number[] = [];
    const device: number[] = [], peaks: number[] = [];
    let firstLoss: number[] | null = null;
    for (let i = 0; i < 4; i++) {
      const log = await trainer.iterate();
      assert.equal(log.iteration, i);
      assert.equal(log.steps.length, 3, "12 rows in mini-batches of 4");
      for (const s of log.steps) {
        if (mode !== "jackpot-no-clip") {
          assert.equal(s.policy.meanRatio, 1, `${mode} it ${i} mb ${s.minibatch}: a ratio moved`);
          assert.equal(s.policy.maxAbsLogRatio, 0);
        }
        assert.equal(s.policy.clipFraction, 0);
        // ω's ratio is against its own sampling-time log-probs: equal within the engine's 1e-4
        assert.ok(s.actor!.maxAbsLogRatio <= 1e-4, `actor log-ratio ${s.actor!.maxAbsLogRatio}`);
        const j = s.jackpot!;
        assert.ok(j.acceptRate > 0 && j.acceptRate <= 1, `acceptance ${j.acceptRate}`);
        assert.ok(j.kappa > 0 && Number.isFinite(j.kappa), `κ ${j.kappa}`);
        assert.ok(Number.isFinite(s.gradNormPolicy) && s.gradNormPolicy >= 0); // 0: a flat group
        assert.ok(s.mismatch.klPolicyActor! >= 0);
      }
      // lr 0: sampling iteration i again gives the same batch (seeds per iteration)
      const again = await trainer.rollout(i);
      assert.equal(again.rewards.reduce((a, x) => a + x, 0) / again.B, log.rewardMean);
      if (i === 0) firstLoss = log.steps.map((s) => s.loss);
      pool.push(rt.pool.stats().liveBytes);
      device.push(log.gpuBytes);
      peaks.push(log.gpuPeakBytes);
      assert.ok(log.gpuPeakBytes >= log.gpuBytes && log.gpuBytes > 0, "peak ≥ held > 0");
    }
    assert.ok(firstLoss!.every(Number.isFinite));
    for (let i = 2; i < pool.length; i++) {
      assert.equal(pool[i], pool[1], `${mode}: live GPU memory grew at iteration ${i}`);
      // Everything the device holds (pool free lists, Jackpot scratch, staging), not only tensors.
      assert.equal(device[i], device[1], `${mode}: GPU memory held grew at iteration ${i}`);
      assert.equal(peaks[i], peaks[1], `${mode}: the GPU memory peak grew at iteration ${i}`);
    }
    assert.equal(jackpotTensorsLive(), live, "every Jackpot recording released");
    console.log(`${mode}: pool live bytes per iteration ${pool.join(", ")}`);
    console.log(
      `${mode}: GPU bytes held / peak per iteration ${device.join(", ")} / ${peaks.join(", ")}`,
    );
    disposeRun(trainer, policy, actor);
  }
  assertNoGpuErrors();
});

Deno.test("rl trainer: modeWeights equal the float64 baselines on random logits", async () => {
  await initTensors();
  const spec = (mode: RlMode) =>
    baselineSpec(mode, { tisCap: 1.5, icepopLow: 0.7, icepopHigh: 1.4 });
  let worst = 0;
  for (const seed of [1, 2, 3]) {
    const rng = new Rng(seed);
    const N = [1, 7, 33][seed - 1], V = 11;
    const logits = (scale: number) =>
      Float32Array.from({ length: N * V }, () => scale * rng.normal());
    const lp = logits(2), la = logits(seed === 3 ? 6 : 2); // peaked actor rows in the last case
    const tokens = Int32Array.from({ length: N }, () => rng.int(V));
    const valid = Uint32Array.from({ length: N }, (_, i) => (i % 5 === 4 ? 0 : 1));
    const lsP = logSoftmax(Float64Array.from(lp), V), lsA = logSoftmax(Float64Array.from(la), V);
    const ref = Float64Array.from(tokens, (id, i) => lsP[i * V + id] + 0.3 * rng.normal());
    const logpNew = Float32Array.from(tokens, (id, i) => lsP[i * V + id]);
    const logpInf = Float32Array.from(tokens, (id, i) => (valid[i] ? lsA[i * V + id] : 0));
    for (const mode of RL_MODE_NAMES) {
      const s = spec(mode);
      if (!s) continue;
      const host = tidy(() => {
        const jt = jackpotTensors({
          policyLogits: tensor(lp, [N, V]),
          actor: { logits: tensor(la, [N, V]) },
          tokens: tensor(tokens, [N], "i32"),
          valid: tensor(valid, [N], "u32"),
          logpRef: tensor(Float32Array.from(ref), [N]),
        }, {
          lambda: 1,
          k: 3,
          seed: 5,
          baseline: { tisCap: 1.5, icepopLow: 0.7, icepopHigh: 1.4 },
        });
        const w = modeWeights(mode, {
          valid: tensor(valid, [N], "u32"),
          logpNew: tensor(logpNew, [N]),
          logpInf: tensor(logpInf, [N]),
          jackpot: jt,
        });
        return [w.weight ?? tensor(new Float32Array(N).fill(1), [N]), w.mask, jt.stats];
      });
      const [w, m] = await readAll(host);
      host.forEach((t) => t.dispose());
      const want = baselineWeights({
        logpInf: Float64Array.from(logpInf),
        logpRef: Float64Array.from(Float32Array.from(ref)),
        logpNew: Float64Array.from(logpNew),
        valid: Uint8Array.from(valid),
      }, s);
      for (let i = 0; i < N; i++) {
        assert.equal(
          Number(m[i]) !== 0,
          want.mask[i] === 1,
          `${mode} seed ${seed} token ${i}: mask`,
        );
        if (!want.mask[i]) continue;
        const e = relErr(w[i], want.weight[i]);
        worst = Math.max(worst, e);
        assert.ok(e < 1e-5, `${mode} seed ${seed} token ${i}: weight ${w[i]} vs ${want.weight[i]}`);
      }
    }
  }
  console.log(`modeWeights vs baselineWeights: worst rel err ${worst.toExponential(1)}`);
  assertNoGpuErrors();
});

Deno.test("rl trainer: Jackpot with a rollout model half the policy's size raises the toy task's reward", async () => {
  await initTensors();
  const { policy, actor } = toyModels(2, 0.3);
  const trainer = new RlTrainer({
    task: toyTask,
    policy,
    actor,
    config: {
      prompts: 4,
      groupSize: 8,
      minibatch: 16,
      maxNew: 4,
      captureK: 6,
      k: 4,
      lrPolicy: 2e-2,
      lrActor: 2e-2,
      seed: 11,
    },
  });
  const rewards: number[] = [], accept: number[] = [];
  for (let i = 0; i < 24; i++) {
    const log = await trainer.iterate();
    rewards.push(log.rewardMean);
    accept.push(log.steps[0].jackpot!.acceptRate);
  }
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const early = mean(rewards.slice(0, 4)), late = mean(rewards.slice(-4));
  console.log(
    `toy reward: first 4 iterations ${early.toFixed(3)}, last 4 ${late.toFixed(3)}; ` +
      `acceptance ${accept.map((a) => a.toFixed(2)).join(" ")}`,
  );
  assert.ok(late > early + 0.2, `reward ${early} → ${late}`);
  disposeRun(trainer, policy, actor);
  assertNoGpuErrors();
});

Deno.test("rl trainer: refused configurations name the problem", async () => {
  await initTensors();
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ mode: "no-correction" }, /allow-uncorrected/],
    [{ mode: "bogus" }, /mode "bogus" is not one of jackpot, on-policy/],
    [{ prompts: 3, groupSize: 4, minibatch: 5 }, /minibatch 5 must divide the rollout batch/],
    [{ k: 30, captureK: 20 }, /captureK 20 must be >= k 30/],
    [{ lambda: 0 }, /lambda must be a finite number > 0, got 0/],
    [{ budget: 1.5 }, /budget must be in \(0, 1\]/],
    [{ c1: -1 }, /c1 must be/],
    [{ lrPolicy: Number.NaN }, /lrPolicy must be/],
    [{ mode: "jackpot-no-clip", target: "ref" }, /needs target "new"/],
    [{ distillTargetKL: 0.1, distill: 0 }, /distillTargetKL needs distill > 0/],
    [{ icepopLow: 2, icepopHigh: 1 }, /icepop band/],
  ];
  for (const [c, re] of bad) {
    assert.throws(() => resolveRlConfig(c as never), (e: Error) => {
      assert.ok(e instanceof RlConfigError, String(e));
      assert.match(e.message, re);
      return true;
    });
  }
  const { policy, actor } = toyModels(1);
  const other = Transformer.init({ ...TOY_POLICY, vocabSize: 20 }, { seed: 1 });
  const short = Transformer.init({ ...TOY_POLICY, maxSeqLen: 4 }, { seed: 1 });
  const config = SMALL;
  const cases: [() => unknown, RegExp][] = [
    [() => new RlTrainer({ task: toyTask, policy, actor: null, config }), /needs a rollout model/],
    [
      () =>
        new RlTrainer({ task: toyTask, policy, actor, config: { ...config, mode: "on-policy" } }),
      /leave the rollout model out/,
    ],
    [
      () => new RlTrainer({ task: toyTask, policy, actor: other, config }),
      /vocabulary \(13\).*\(20\) differ/,
    ],
    [() => new RlTrainer({ task: toyTask, policy: short, actor, config }), /policy: .*maxSeqLen 4/],
    [() => new RlTrainer({ task: toyTask, policy, actor: policy, config }), /policy object itself/],
  ];
  for (const [f, re] of cases) assert.throws(f, (e: Error) => re.test(e.message));
  noGrad(() => [policy, actor, other, short].forEach((m) => m.dispose()));
  assert.equal(runtime().counters.reads >= 0, true);
  assertNoGpuErrors();
});

Deno.test("rl trainer: a budget picks λ so the batch's mean acceptance is ā; λ_distill follows its KL target", async () => {
  await initTensors();
  const { policy, actor } = toyModels(6);
  const trainer = new RlTrainer({
    task: toyTask,
    policy,
    actor,
    config: {
      ...SMALL,
      budget: 0.6,
      lrPolicy: 0,
      lrActor: 0,
      distill: 0.5,
      distillTargetKL: 1e-3,
      seed: 8,
    },
  });
  const before = trainer.distillCoef;
  const log = await trainer.iterate();
  // lr 0: ℓ_new = ℓ_ref, the ratios λ was chosen from; the GPU's mean acceptance probability
  // over all valid tokens of the batch is then ā up to f32 rounding
  let sum = 0, n = 0;
  for (const s of log.steps) {
    sum += s.jackpot!.expectedAcceptRate * s.jackpot!.validCount;
    n += s.jackpot!.validCount;
  }
  console.log(`budget 0.6: λ ${log.lambda.toFixed(4)}, mean acceptance ${(sum / n).toFixed(6)}`);
  assert.ok(Math.abs(sum / n - 0.6) < 1e-5, `mean acceptance ${sum / n}`);
  assert.ok(log.lambda !== 1 && log.lambda > 0);
  // KL ≫ target: the error clips at +0.2, one step of horizon 10 multiplies by 1.02
  const kl = log.steps.map((s) => s.mismatch.klPolicyActor!);
  assert.ok(kl.every((x) => x > 1e-3));
  assert.ok(Math.abs(trainer.distillCoef - before * 1.02) < 1e-12, `${trainer.distillCoef}`);
  assert.ok(log.steps.every((s) => s.distillCoef === before), "the new weight applies next time");
  disposeRun(trainer, policy, actor);
  assertNoGpuErrors();
});

Deno.test("rl trainer: at lr 0 the policy loss does not depend on the mini-batch split (SPEC §10)", async () => {
  await initTensors();
  // seq-mean-token-sum scales each mini-batch by its own rows: (rows_m / rows)·loss_m sums to the
  // whole batch's loss whatever the split; TIS weights depend on each token alone
  const totals: number[] = [];
  for (const minibatch of [12, 4, 6]) {
    const { policy, actor } = toyModels(5); // the draws of the first test: not all groups flat
    const trainer = new RlTrainer({
      task: toyTask,
      policy,
      actor,
      config: {
        ...SMALL,
        minibatch,
        mode: "tis",
        aggregation: "seq-mean-token-sum",
        lrPolicy: 0,
        lrActor: 0,
        seed: 3,
      },
    });
    const log = await trainer.iterate();
    assert.equal(log.steps.length, 12 / minibatch);
    totals.push(log.steps.reduce((a, s) => a + (minibatch / 12) * s.policy.loss, 0));
    disposeRun(trainer, policy, actor);
  }
  console.log(`policy loss by split 1 / 3 / 2 mini-batches: ${totals.map((x) => x.toFixed(7))}`);
  assert.ok(Math.abs(totals[0]) > 1e-3, "the batch's policy term is not 0");
  for (const t of totals.slice(1)) {
    assert.ok(Math.abs(t - totals[0]) < 1e-6, `${t} vs ${totals[0]}`);
  }
  assertNoGpuErrors();
});
