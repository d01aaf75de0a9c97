/**
 * One joint Jackpot step end to end (SPEC §6, Algorithm 1) on two tiny Transformers of one
 * vocabulary (bench/rl/joint_step.ts builds it): a real rollout by the actor with its top-k
 * captured, GRPO advantages of a deterministic reward, both models' training forward, Jackpot's
 * mask and weights as tensors, L = PPO-OBRS(policy) + PPO(actor) + λ_d·KL(SG(policy) ‖ actor),
 * backward, one AdamW step per model. Checked against the float64 references: the logits
 * (`referenceLogits`), the sampled log-probs, Jackpot (`obrsBatchTopK`), both policy terms
 * (`policyLossRef`), the distillation (`distillKLRef`), L, both models' parameter gradients (central
 * finite differences of the float64 loss with the stop-gradient inputs held fixed), and the AdamW
 * update; SPEC §10's sanity checks; an all-rejected batch; flat GPU memory over repeated steps;
 * the dispatch count of the Jackpot + loss part; row tiles of logits over one binding.
 */
import assert from "node:assert/strict";
import { noGrad, ops } from "../src/autograd/mod.ts";
import { recordedDispatches } from "../src/gpu/dispatch_tally.ts";
import { readAll, runtime, type Tensor, tidy } from "../src/tensor/mod.ts";
import type { RefParams } from "../src/nn/reference.ts";
import { sampledLogProbs } from "../src/nn/replay.ts";
import { logSoftmax, obrsBatchTopK } from "../src/obrs/reference/mod.ts";
import { broadcastAdvantages } from "../src/rl/advantages.ts";
import { decodeDistillStats, distillKL } from "../src/rl/distill.ts";
import { distillKLRef } from "../src/rl/distill_reference.ts";
import { decodePolicyLossStats, policyLoss } from "../src/rl/policy_loss.ts";
import { policyLossRef, resolvePolicyLossOptions } from "../src/rl/policy_loss_reference.ts";
import { actorFromRollout, jackpotTensors, jackpotTensorsLive } from "../src/rl/jackpot_tensors.ts";
import {
  JOINT_DEFAULTS,
  type JointBatch,
  type JointOptions,
  type JointSetup,
  jointSetup,
  lossBackwardDispatches,
  policyRefLogp,
  recordJointLoss,
  rolloutBatch,
  updateBoth,
} from "../bench/rl/joint_step.ts";
import { assertNoGpuErrors, atBindingLimit, setup } from "./autograd_util.ts";
import {
  checkGradients,
  disposeStep,
  f64,
  gatherLogp,
  maxAbs,
  refLogits,
  relErr,
  sequences,
} from "./rl_joint_step_util.ts";
import { compareJackpot } from "./rl_jackpot_util.ts";
import { Rng } from "../src/util/rng.ts";

Deno.test("joint step: every intermediate against float64, both models' gradients by finite differences, one AdamW step each", async () => {
  const rt = await setup();
  // c1 = 1.2: the clip of w binds on some accepted tokens, so ρ ≠ w there
  const s = jointSetup({ ...JOINT_DEFAULTS, jackpot: { ...JOINT_DEFAULTS.jackpot, c1: 1.2 } });
  const o = s.o, P = o.promptLength, T = o.maxNew, K = o.captureK;
  const B = s.prompts.length, V = s.policy.config.vocabSize, N = B * T;
  const b = await rolloutBatch(s, 7);
  const r = b.rollout;
  const ref = policyRefLogp(s, b);
  const reads = rt.counters.reads;
  const step = tidy(() => {
    const j = recordJointLoss(s, b, ref, { rowData: true });
    const replay = noGrad(() => sampledLogProbs(j.logitsActor, b.targets, r.settings));
    const gP = [...s.policy.namedGradients().values()].map((g) => g!);
    const gA = [...s.actor.namedGradients().values()].map((g) => g!);
    return { j, replay, gP, gA };
  });
  const { j } = step;
  const namedP = s.policy.namedParameters(), namedA = s.actor.namedParameters();
  const host = await readAll([
    j.logitsPolicy,
    j.logitsActor,
    j.logpPolicy,
    j.logpActor,
    ref,
    step.replay,
    j.jackpot.mask,
    j.jackpot.rho,
    j.jackpot.w,
    j.jackpot.rowData!,
    j.jackpot.stats,
    j.policyTerm.stats,
    j.policyTerm.terms,
    j.actorTerm.stats,
    j.distillTerm.stats,
    j.loss,
    ...step.gP,
    ...step.gA,
    ...namedP.values(),
    ...namedA.values(),
  ]);
  assert.equal(rt.counters.reads, reads + 1, "the step reads back once");
  const [logitsP, logitsA, lpP, lpA, lpRef, replay, mask, rho, w, rowData, jStats] = host;
  const [plStats, plTerms, paStats, dkStats, lossOut] = host.slice(11, 16);
  let at = 16;
  const take = (names: Iterable<string>) =>
    new Map([...names].map((n) => [n, host[at++] as Float32Array]));
  const gradP = take(namedP.keys()), gradA = take(namedA.keys());
  const pP: RefParams = new Map([...take(namedP.keys())].map(([n, x]) => [n, f64(x)]));
  const pA: RefParams = new Map([...take(namedA.keys())].map(([n, x]) => [n, f64(x)]));
  const { valid, actor } = actorFromRollout(r);
  const targets = r.tokens;
  const lines: string[] = [];

  // Logits of both models against the float64 forward.
  const seqs = sequences(s, b);
  const errLogits = Math.max(
    maxAbs(logitsP, refLogits(s.policy, pP, seqs, P, T)),
    maxAbs(logitsA, refLogits(s.actor, pA, seqs, P, T)),
  );
  assert.ok(errLogits < 1e-4, `logits vs float64 forward: ${errLogits}`);
  lines.push(`logits vs referenceLogits: max |Δ| ${errLogits.toExponential(1)}`);

  // Sampled log-probs: the fused cross-entropy path vs float64 log-softmax of the GPU logits; the
  // engine's recorded log-probs vs the trainer's (SPEC §10, temperature 1, within 1e-4).
  const errLp = Math.max(
    maxAbs(lpP, gatherLogp(f64(logitsP), targets, V)),
    maxAbs(lpA, gatherLogp(f64(logitsA), targets, V)),
  );
  assert.ok(errLp < 2e-6, `ℓ vs float64 log-softmax: ${errLp}`);
  assert.deepEqual(lpRef, lpP, "ℓ_ref (no-grad forward) equals ℓ_new bit for bit (lr 0 sanity)");
  const errRollout = Math.max(
    maxAbs(lpA, r.logProbs, valid),
    maxAbs(replay, r.logProbs, valid),
    maxAbs(lpA, r.rawLogProbs, valid),
  );
  assert.ok(errRollout <= 1e-4, `rollout vs trainer log-probs: ${errRollout}`);
  lines.push(
    `ℓ vs float64: ${errLp.toExponential(1)}; rollout vs trainer-side (CE and replay): ${
      errRollout.toExponential(1)
    }`,
  );

  // Jackpot against obrsBatchTopK on the read-back logits (p_ref = p_new: one set of weights).
  const lsP = logSoftmax(f64(logitsP), V);
  const want = obrsBatchTopK({
    vocab: V,
    capturedK: K,
    logpRef: lsP,
    logpNew: lsP,
    ids: Int32Array.from(targets),
    valid: Uint8Array.from(valid),
    infTopIds: actor.topkIds as Int32Array,
    infTopLogp: f64(actor.topkLogp as Float32Array),
    infSampledLogp: f64(actor.sampledLogp as Float32Array),
    logpInfFull: logSoftmax(f64(logitsA), V),
  }, { lambda: 1, k: 8, c1: 1.2, c2: 3, target: "new", seed: o.jackpot.seed });
  const jStatsHost = j.jackpot.decode(jStats);
  const e = compareJackpot(
    "joint step",
    want,
    {
      mask: mask as Uint32Array,
      rho: rho as Float32Array,
      w: w as Float32Array,
      rowData: rowData as Float32Array,
      stats: jStatsHost,
    },
    valid,
    o.jackpot.seed!,
  );
  assert.ok(jStatsHost.acceptedCount > 0 && jStatsHost.acceptedCount < jStatsHost.validCount);
  assert.ok(jStatsHost.clipFractionC1 > 0, "no accepted token has its weight clipped");
  lines.push(
    `Jackpot vs obrsBatchTopK: |ΔZ_approx| ${e.z.toExponential(1)}, |Δlog a| ${
      e.logA.toExponential(1)
    }, rel Δw/ρ ${e.weights.toExponential(1)}, rel Δstats ${e.stats.toExponential(1)}, ` +
      `straddles ${e.straddles}; ᾱ ${
        jStatsHost.acceptRate.toFixed(3)
      } (${jStatsHost.acceptedCount}/${jStatsHost.validCount}), κ ${jStatsHost.kappa.toFixed(3)}`,
  );

  // Both policy terms against policyLossRef on the GPU's inputs.
  const eps = resolvePolicyLossOptions({ epsLow: o.epsLow, epsHigh: o.epsHigh });
  const adv = broadcastAdvantages(b.advantages, T, { end: r.lengths });
  const behaviour = Float32Array.from(r.logProbs, (x, i) => (valid[i] ? x : 0));
  const wantP = policyLossRef(
    { B, T, logpNew: lpP, logpRef: lpRef, advantages: adv, weight: rho, mask },
    eps,
  );
  const wantA = policyLossRef(
    { B, T, logpNew: lpA, logpRef: behaviour, advantages: adv, mask: valid },
    eps,
  );
  const sP = decodePolicyLossStats(plStats), sA = decodePolicyLossStats(paStats);
  for (const [label, got, ref] of [["policy", sP, wantP], ["actor", sA, wantA]] as const) {
    assert.ok(
      Math.abs(got.loss - ref.loss) < 1e-6 + 1e-5 * Math.abs(ref.loss),
      `${label} term ${got.loss} vs ${ref.loss}`,
    );
    assert.equal(got.keptTokens, ref.stats.keptTokens, `${label} kept tokens`);
    assert.equal(got.clipFraction, 0, `${label}: clip fraction at the batch's own weights`);
  }
  assert.equal(
    sP.keptTokens,
    jStatsHost.acceptedCount,
    "the policy term keeps the accepted tokens",
  );
  assert.equal(sP.meanRatio, 1, "SPEC §10: every ratio is exactly 1 at the batch's weights");
  assert.equal(sP.maxAbsLogRatio, 0);
  const errTerms = maxAbs(plTerms, wantP.terms);
  assert.ok(errTerms < 1e-6, `policy per-token terms: ${errTerms}`);

  // The distillation term and L.
  const wantD = distillKLRef(f64(logitsA), f64(logitsP), N, V, { mask: valid });
  const sD = decodeDistillStats(dkStats);
  assert.ok(relErr(sD.loss, wantD.loss) < 1e-5, `distill ${sD.loss} vs ${wantD.loss}`);
  assert.equal(sD.keptRows, wantD.kept);
  const wantL = wantP.loss + wantA.loss + o.distill * wantD.loss;
  assert.ok(Math.abs(lossOut[0] - wantL) < 1e-6 + 1e-5 * Math.abs(wantL), `L ${lossOut[0]}`);
  lines.push(
    `L = ${lossOut[0].toFixed(6)} (float64 ${wantL.toFixed(6)}): PPO-OBRS ${sP.loss.toFixed(5)}, ` +
      `PPO(actor) ${sA.loss.toFixed(5)}, KL ${sD.loss.toFixed(5)}; terms |Δ| ${
        errTerms.toExponential(1)
      }`,
  );

  // Parameter gradients of both models: finite differences of the float64 loss, the stop-gradient
  // inputs (ρ, M, ℓ_ref, Â, the behaviour log-probs, the teacher's logits) held at their values.
  const rng = new Rng(3);
  const lossP = (p: RefParams) =>
    policyLossRef({
      B,
      T,
      logpNew: gatherLogp(refLogits(s.policy, p, seqs, P, T), targets, V),
      logpRef: lpRef,
      advantages: adv,
      weight: rho,
      mask,
    }, eps).loss;
  const teacher = f64(logitsP);
  const lossA = (p: RefParams) => {
    const x = refLogits(s.actor, p, seqs, P, T);
    const ppo = policyLossRef(
      {
        B,
        T,
        logpNew: gatherLogp(x, targets, V),
        logpRef: behaviour,
        advantages: adv,
        mask: valid,
      },
      eps,
    ).loss;
    return ppo + o.distill * distillKLRef(x, teacher, N, V, { mask: valid }).loss;
  };
  const gp = checkGradients("policy", pP, gradP, lossP, rng);
  const ga = checkGradients("actor", pA, gradA, lossA, rng);
  lines.push(
    `gradients vs float64 finite differences: policy ${gp.checked} coordinates, max |Δ| ${
      gp.abs.toExponential(1)
    } (rel ${gp.rel.toExponential(1)}); actor ${ga.checked}, max |Δ| ${
      ga.abs.toExponential(1)
    } (rel ${ga.rel.toExponential(1)})`,
  );

  // One AdamW step each: p − lr·(g / (|g| + eps) + wd·p) at the first step (m̂ = g, v̂ = g²).
  updateBoth(s);
  const after = await readAll([...namedP.values(), ...namedA.values()]);
  let errAdam = 0, moved = 0;
  [...pP, ...pA].forEach(([name, p0], i) => {
    const g = (i < pP.size ? gradP : gradA).get(name)!;
    const lr = i < pP.size ? o.lrPolicy : o.lrActor;
    const wd = /norm/.test(name) ? 0 : 0.01;
    for (let k = 0; k < p0.length; k++) {
      if (Math.abs(g[k]) < 1e-15) continue; // f32 underflows g² there
      const want = p0[k] - lr * (g[k] / (Math.abs(g[k]) + 1e-8) + wd * p0[k]);
      errAdam = Math.max(errAdam, Math.abs(after[i][k] - want));
      if (after[i][k] !== p0[k]) moved++;
    }
  });
  assert.ok(errAdam < 1e-6, `AdamW step vs float64: ${errAdam}`);
  assert.ok(moved > 1000, `only ${moved} parameters moved`);
  lines.push(`AdamW step vs float64: max |Δ| ${errAdam.toExponential(1)} over ${moved} moved`);
  console.log(lines.join("\n"));
  assert.equal(valid.length, N);

  noGrad(() => {
    for (const t of [...step.gP, ...step.gA, step.replay]) t.dispose();
  });
  disposeStep(j);
  ref.dispose();
  b.dispose();
  s.dispose();
  assert.equal(jackpotTensorsLive(), 0);
  assertNoGpuErrors();
});

// One step inside tidy (loss, backward, both updates); reads the statistics and the mask.
async function oneStep(s: JointSetup, b: JointBatch, ref: Tensor) {
  let dispatches!: ReturnType<typeof recordJointLoss>["dispatches"] & { optimizer: number };
  let out!: Tensor[];
  const keys = recordedDispatches(() => {
    out = tidy(() => {
      const j = recordJointLoss(s, b, ref);
      const before = runtime().counters.dispatches;
      updateBoth(s);
      dispatches = { ...j.dispatches, optimizer: runtime().counters.dispatches - before };
      return [j.jackpot.stats, j.policyTerm.stats, j.actorTerm.stats, j.distillTerm.stats, j.loss];
    });
  });
  const raw = await readAll(out);
  for (const t of out) t.dispose(); // the Jackpot statistics release the raw buffers
  return { raw, dispatches, keys };
}

Deno.test("joint step: lr 0 keeps every ratio exactly 1 over 5 steps, GPU memory is flat, the dispatches are counted", async () => {
  const rt = await setup();
  const s = jointSetup({ ...JOINT_DEFAULTS, lrPolicy: 0, lrActor: 0 });
  const b = await rolloutBatch(s, 9);
  const ref = policyRefLogp(s, b);
  const pool: number[] = [], created: number[] = [], counts: number[] = [];
  const live = jackpotTensorsLive();
  let first: number[] | null = null;
  for (let i = 0; i < 6; i++) {
    const { raw, dispatches: d, keys } = await oneStep(s, b, ref);
    const sP = decodePolicyLossStats(raw[1]), sA = decodePolicyLossStats(raw[2]);
    assert.equal(sP.meanRatio, 1, `step ${i}: a ratio moved with lr 0`);
    assert.equal(sP.maxAbsLogRatio, 0);
    assert.equal(sP.clipFraction, 0);
    assert.equal(sA.clipFraction, 0);
    // lr 0: the same weights, so the same mask, weights and loss, bit for bit
    const bits = [...raw[0], ...raw[4]];
    if (first) assert.deepEqual(bits, first, `step ${i} differs from step 0`);
    first = bits;
    pool.push(rt.pool.stats().liveBytes);
    created.push(rt.pool.stats().created);
    counts.push(keys.length);
    if (i === 5) {
      const lossBwd = lossBackwardDispatches(keys);
      const jackpotPart = d.jackpot + d.losses + lossBwd;
      console.log(
        `dispatches per joint step: zeroGrad ${d.zeroGrad}, forward ${d.forward}, jackpot ${d.jackpot}, ` +
          `losses ${d.losses}, backward ${d.backward} (of which loss kernels ${lossBwd}), ` +
          `AdamW ${d.optimizer}; Jackpot + loss part ${jackpotPart}; all ${keys.length}`,
      );
      assert.equal(
        keys.length,
        d.zeroGrad + d.forward + d.jackpot + d.losses + d.backward + d.optimizer,
      );
      assert.ok(d.jackpot <= 14, `jackpot recorded ${d.jackpot} dispatches`);
      assert.equal(lossBwd, 3, "one backward dispatch per loss op");
    }
  }
  console.log(
    `pool live bytes per step: ${pool.join(", ")}; buffers created: ${created.join(", ")}`,
  );
  for (let i = 2; i < pool.length; i++) {
    assert.equal(pool[i], pool[1], `live GPU memory grew at step ${i}`);
    assert.equal(created[i], created[1], `step ${i} created GPU buffers`);
  }
  assert.equal(jackpotTensorsLive(), live, "every Jackpot recording released");
  console.log(`dispatches per step: ${counts.join(", ")}`);
  assert.ok(counts.slice(2).every((c) => c === counts[1]), "a steady step records a fixed count");
  ref.dispose();
  b.dispose();
  s.dispose();
  assertNoGpuErrors();
});

Deno.test("joint step: an all-rejected batch (λ huge) gives a policy term of 0, zero policy gradients, finite actor gradients", async () => {
  await setup();
  const o: JointOptions = {
    ...JOINT_DEFAULTS,
    jackpot: { ...JOINT_DEFAULTS.jackpot, lambda: 1e30 },
  };
  const s = jointSetup(o);
  const b = await rolloutBatch(s, 7);
  const ref = policyRefLogp(s, b);
  const step = tidy(() => {
    const j = recordJointLoss(s, b, ref);
    const gP = [...s.policy.namedGradients().values()].map((g) => g!);
    const gA = [...s.actor.namedGradients().values()].map((g) => g!);
    updateBoth(s);
    return { j, gP, gA };
  });
  const { j } = step;
  const host = await readAll([
    j.jackpot.stats,
    j.policyTerm.stats,
    j.policyTerm.loss,
    j.loss,
    ...step.gP,
    ...step.gA,
    ...s.policy.parameters(),
    ...s.actor.parameters(),
  ]);
  const jStats = j.jackpot.decode(host[0]);
  const sP = decodePolicyLossStats(host[1]);
  assert.equal(jStats.acceptedCount, 0, "λ = 1e30 rejects every token");
  assert.ok(jStats.validCount > 0);
  assert.ok(Object.is(host[2][0], 0), `policy term ${host[2][0]} (must be +0, never NaN)`);
  assert.equal(sP.keptTokens, 0);
  assert.equal(sP.emptySequences, s.prompts.length);
  assert.ok(Number.isFinite(host[3][0]) && host[3][0] !== 0, `L ${host[3][0]}`);
  const nP = step.gP.length, nA = step.gA.length;
  const gP = host.slice(4, 4 + nP), gA = host.slice(4 + nP, 4 + nP + nA);
  assert.ok(gP.every((g) => g.every((x) => x === 0)), "the policy gets no gradient");
  assert.ok(gA.every((g) => g.every(Number.isFinite)), "finite actor gradients");
  assert.ok(gA.some((g) => g.some((x) => x !== 0)), "the actor still learns (PPO + distillation)");
  assert.ok(host.slice(4 + nP + nA).every((p) => p.every(Number.isFinite)), "finite weights");
  console.log(
    `all rejected: ᾱ ${jStats.acceptRate}, κ ${jStats.kappa}, policy term ${host[2][0]}, L ${
      host[3][0].toFixed(5)
    }`,
  );
  noGrad(() => [...step.gP, ...step.gA].forEach((t) => t.dispose()));
  disposeStep(j);
  ref.dispose();
  b.dispose();
  s.dispose();
  assertNoGpuErrors();
});

Deno.test("joint step: the Jackpot + loss part over row tiles of the logits gives the same results", async () => {
  await setup();
  const s = jointSetup();
  const o = s.o, B = s.prompts.length, T = o.maxNew;
  const b = await rolloutBatch(s, 5);
  const ref = policyRefLogp(s, b);
  const logits = noGrad(() =>
    tidy(() => [
      s.policy.head(s.policy.hidden(b.input)),
      s.actor.head(s.actor.hidden(b.input)),
    ])
  );
  const [lp, la] = noGrad(() =>
    tidy(() =>
      logits.map((l) => l.slice(1, o.promptLength - 1, o.promptLength - 1 + T).contiguous())
    )
  );
  const part = async () => {
    const out = noGrad(() =>
      tidy(() => {
        const { valid, actor } = actorFromRollout(b.rollout, la);
        const jt = jackpotTensors(
          { policyLogits: lp, actor, tokens: b.targets, valid, logpRef: ref },
          o.jackpot,
        );
        const logpNew = ops.gatherLast(lp.logSoftmax(), b.targets);
        const pl = policyLoss({
          logpNew,
          logpRef: ref,
          advantages: b.adv,
          weight: jt.rho,
          mask: jt.mask,
        });
        const dk = distillKL(la, lp, { mask: b.valid });
        return [jt.mask, jt.rho, jt.w, jt.stats, pl.stats, dk.stats];
      })
    );
    const host = await readAll(out);
    out.forEach((t) => t.dispose());
    return host;
  };
  // 37 f32 = 148 bytes a row; 64 rows between two bindable offsets: tiles of 64 and 8 rows.
  const [whole, d1] = await atBindingLimit(null, part);
  const [tiled, d2] = await atBindingLimit(64 * 148, part);
  assert.ok(B * T > 64 && d2 > d1, `row tiles: ${d1} vs ${d2} dispatches`);
  for (let i = 0; i < 4; i++) assert.deepEqual(tiled[i], whole[i], `Jackpot output ${i}`);
  for (let i = 4; i < 6; i++) {
    assert.ok(
      maxAbs(tiled[i], whole[i]) < 1e-6,
      `loss statistics ${i}: ${tiled[i]} vs ${whole[i]}`,
    );
  }
  console.log(`Jackpot + losses: ${d1} dispatches in one binding, ${d2} over 64-row tiles`);
  for (const t of [lp, la, ...logits, ref]) t.dispose();
  b.dispose();
  s.dispose();
  assertNoGpuErrors();
});
