// The float64 policy loss (src/rl/policy_loss_reference.ts) against a naive computation written
// from SPEC §4/§5 independently (per-sequence lists, the PPO objective as max of negated terms),
// its analytic gradient against central finite differences of the loss (at points kept away from
// the clip kinks and the ±20 clamp, where the derivative jumps), the SPEC §10 ratio-1 sanity
// check, the no-clip ratio's gradient, and the option checks.
import assert from "node:assert/strict";
import {
  POLICY_LOSS_AGGREGATIONS,
  type PolicyLossAggregation,
  policyLossRef,
  type PolicyLossRefInputs,
  type ResolvedPolicyLossOptions,
  resolvePolicyLossOptions,
} from "../src/rl/policy_loss_reference.ts";
import { Rng } from "../src/util/rng.ts";
import { randomPolicyBatch } from "./rl_policy_loss_util.ts";

// SPEC §4 read literally: per sequence, the kept tokens' PPO objectives; the loss is minus their
// aggregate. Written apart from the reference: PPO's −min(a, b) as max(−a, −b), no shared helpers.
function naiveLoss(x: PolicyLossRefInputs, o: ResolvedPolicyLossOptions): number {
  const perSeq: number[][] = [];
  for (let b = 0; b < x.B; b++) {
    const list: number[] = [];
    for (let t = 0; t < x.T; t++) {
      const i = b * x.T + t;
      const ln = x.logpNew[i], lr = x.logpRef && o.ratio === "clip" ? x.logpRef[i] : ln;
      const a = x.advantages[i], w = x.weight ? x.weight[i] : 1, m = x.mask[i];
      if (m === 0) continue;
      const finite = [a, w].every(Number.isFinite) &&
        [ln, lr].every((v) => !Number.isNaN(v) && v !== Infinity);
      if (m !== 1 || !finite) continue;
      let obj: number;
      if (o.ratio === "no-clip") obj = w * a;
      else {
        let d = ln === -Infinity && lr === -Infinity ? 0 : ln - lr;
        d = d > 20 ? 20 : d < -20 ? -20 : d;
        const r = Math.exp(d);
        const rc = r < 1 - o.epsLow ? 1 - o.epsLow : r > 1 + o.epsHigh ? 1 + o.epsHigh : r;
        obj = -Math.max(-r * a, -rc * a) * w;
      }
      list.push(obj);
    }
    perSeq.push(list);
  }
  const sum = (v: number[]) => v.reduce((s, q) => s + q, 0);
  const all = perSeq.flat();
  if (o.aggregation === "token-mean") return all.length ? -sum(all) / all.length : 0;
  if (o.aggregation === "seq-mean-token-sum") return -sum(perSeq.map(sum)) / x.B;
  const means = perSeq.filter((l) => l.length).map((l) => sum(l) / l.length);
  return means.length ? -sum(means) / means.length : 0;
}

const opts = (
  aggregation: PolicyLossAggregation,
  ratio: "clip" | "no-clip" = "clip",
  epsLow = 0.2,
  epsHigh = 0.28,
) => resolvePolicyLossOptions({ aggregation, ratio, epsLow, epsHigh });

Deno.test("policyLossRef: loss and statistics match a naive SPEC §4 computation", () => {
  const rng = new Rng(5);
  let worst = 0;
  for (let seed = 0; seed < 40; seed++) {
    const B = 1 + rng.int(6), T = 1 + rng.int(9);
    const x = randomPolicyBatch(new Rng(seed), B, T, { nonFinite: seed % 3 === 0 });
    for (const agg of POLICY_LOSS_AGGREGATIONS) {
      for (const ratio of ["clip", "no-clip"] as const) {
        const o = opts(agg, ratio);
        const got = policyLossRef(x, o), want = naiveLoss(x, o);
        assert.ok(Number.isFinite(got.loss), `seed ${seed} ${agg} ${ratio}: loss ${got.loss}`);
        const err = Math.abs(got.loss - want);
        worst = Math.max(worst, err);
        assert.ok(err <= 1e-12 * (1 + Math.abs(want)), `seed ${seed} ${agg} ${ratio}`);
        // per-token terms add up to the unnormalised sum; counts agree with the mask
        const s = got.terms.reduce((a, v) => a + v, 0);
        assert.ok(Math.abs(s - got.stats.termSum) <= 1e-12 * (1 + Math.abs(s)));
        // every token with a nonzero mask is either kept or counted as non-finite
        const nonzero = Array.from(x.mask).filter((m) => m !== 0).length;
        assert.equal(got.stats.keptTokens + got.stats.nonFinite.count, nonzero);
        assert.equal(got.stats.keptSequences + got.stats.emptySequences, B);
        // no gradient through a clamped ratio
        if (ratio === "clip") {
          for (let i = 0; i < x.mask.length; i++) {
            if (Math.abs(x.logpNew[i] - x.logpRef[i]) > 20) assert.equal(got.grad[i], 0);
          }
        }
      }
    }
  }
  console.log(`policyLossRef vs naive: max |Δloss| ${worst.toExponential(2)}`);
});

Deno.test("policyLossRef: gradient matches central finite differences away from the kinks", () => {
  let worst = 0;
  for (let seed = 0; seed < 30; seed++) {
    const rng = new Rng(100 + seed);
    const B = 1 + rng.int(4), T = 1 + rng.int(6);
    // no ratio beyond the clamp: e^20·Â terms would drown the differences in rounding (their
    // gradient, exactly 0, is checked by the naive test's clamped-token check and the GPU tests)
    const x = randomPolicyBatch(rng, B, T, { awayFromKinks: true, beyondClamp: 0, negInf: false });
    for (const agg of POLICY_LOSS_AGGREGATIONS) {
      const o = opts(agg, "clip", 0.2, 0.28);
      const { grad } = policyLossRef(x, o);
      const ln = Float64Array.from(x.logpNew);
      const h = 1e-6;
      for (let i = 0; i < ln.length; i++) {
        const at = (v: number) => {
          const c = ln.slice();
          c[i] = v;
          return policyLossRef({ ...x, logpNew: c }, o).loss;
        };
        const fd = (at(ln[i] + h) - at(ln[i] - h)) / (2 * h);
        const err = Math.abs(fd - grad[i]);
        worst = Math.max(worst, err);
        assert.ok(
          err <= 1e-6 * (1 + Math.abs(fd)),
          `seed ${seed} ${agg} token ${i}: ${grad[i]} vs ${fd}`,
        );
      }
    }
  }
  console.log(`policyLossRef gradient vs finite differences: max error ${worst.toExponential(2)}`);
});

Deno.test("policyLossRef: no-clip gradient is the clip loss's at ℓ_ref = ℓ_new with ε = ∞", () => {
  // r = p_new / SG(p_new): the loss's value does not move with ℓ_new, its gradient is that of
  // exp(ℓ_new − ℓ0) at ℓ0 = ℓ_new held fixed, i.e. the clip form with no clip binding.
  for (let seed = 0; seed < 10; seed++) {
    const rng = new Rng(300 + seed);
    const B = 1 + rng.int(4), T = 1 + rng.int(6);
    const x = randomPolicyBatch(rng, B, T, { awayFromKinks: true, beyondClamp: 0, negInf: false });
    for (const agg of POLICY_LOSS_AGGREGATIONS) {
      const nc = policyLossRef({ ...x, logpRef: undefined }, opts(agg, "no-clip"));
      const held = { ...x, logpRef: Float64Array.from(x.logpNew) };
      const wide = opts(agg, "clip", 1e9, 1e9);
      const ref = policyLossRef(held, wide);
      assert.ok(Math.abs(nc.loss - ref.loss) <= 1e-12 * (1 + Math.abs(ref.loss)));
      for (let i = 0; i < x.logpNew.length; i++) {
        const c = Float64Array.from(x.logpNew), h = 1e-6;
        c[i] += h;
        const up = policyLossRef({ ...held, logpNew: c }, wide).loss;
        c[i] -= 2 * h;
        const down = policyLossRef({ ...held, logpNew: c }, wide).loss;
        const fd = (up - down) / (2 * h);
        assert.ok(Math.abs(fd - nc.grad[i]) <= 1e-6 * (1 + Math.abs(fd)), `seed ${seed} ${agg}`);
      }
    }
  }
});

Deno.test("policyLossRef: with ℓ_new = ℓ_ref every ratio is 1 and loss = −aggregate(ρ·M·Â)", () => {
  for (let seed = 0; seed < 20; seed++) {
    const rng = new Rng(500 + seed);
    const B = 1 + rng.int(5), T = 1 + rng.int(8);
    const x = randomPolicyBatch(rng, B, T, { nonFinite: false });
    const same = { ...x, logpRef: x.logpNew };
    for (const agg of POLICY_LOSS_AGGREGATIONS) {
      const r = policyLossRef(same, opts(agg));
      const plain = naiveLoss({ ...same, logpRef: undefined }, opts(agg, "no-clip"));
      assert.ok(Math.abs(r.loss - plain) <= 1e-12 * (1 + Math.abs(plain)), `seed ${seed} ${agg}`);
      assert.equal(r.stats.clipFraction, 0);
      assert.equal(r.stats.maxAbsLogRatio, 0);
      if (r.stats.keptTokens > 0) assert.equal(r.stats.meanRatio, 1);
    }
  }
});

Deno.test("policyLossRef: every token rejected gives loss 0, gradient 0, counts reported", () => {
  const B = 3, T = 4, n = B * T;
  const x: PolicyLossRefInputs = {
    B,
    T,
    logpNew: new Float64Array(n).fill(-1),
    logpRef: new Float64Array(n).fill(NaN), // padding may hold anything: never read
    advantages: new Float64Array(n).fill(2),
    mask: new Float64Array(n),
  };
  for (const agg of POLICY_LOSS_AGGREGATIONS) {
    const r = policyLossRef(x, opts(agg));
    assert.ok(Object.is(r.loss, 0), `${agg}: ${r.loss}`);
    assert.ok(r.grad.every((g) => g === 0));
    assert.equal(r.stats.emptySequences, B);
    assert.equal(r.stats.keptTokens, 0);
    assert.equal(r.stats.nonFinite.count, 0);
  }
});

Deno.test("policyLossRef: non-finite kept tokens and masks other than 0/1 are counted, left out", () => {
  const x: PolicyLossRefInputs = {
    B: 2,
    T: 3,
    logpNew: [-1, NaN, -1, -1, -Infinity, -1],
    logpRef: [-1, -1, Infinity, -1, -2, -1],
    advantages: [1, 1, 1, 1, 1, -Infinity],
    mask: [1, 1, 1, 0.5, 1, 1],
  };
  const r = policyLossRef(x, opts("token-mean"));
  // kept: token 0 (ratio 1) and token 4 (ℓ_new = −Inf: clamped, ratio e^-20, no gradient)
  assert.equal(r.stats.keptTokens, 2);
  assert.deepEqual(r.stats.nonFinite, { count: 4, first: 1 });
  assert.equal(r.stats.maxAbsLogRatio, Infinity);
  assert.equal(r.stats.clampedTokens, 1);
  assert.equal(r.grad[4], 0);
  assert.ok(Math.abs(r.loss - -(1 + Math.exp(-20)) / 2) < 1e-15);
});

Deno.test("resolvePolicyLossOptions: bad options are named", () => {
  assert.throws(() => resolvePolicyLossOptions({ epsLow: -0.1 }), /epsLow must be a finite/);
  assert.throws(() => resolvePolicyLossOptions({ epsHigh: NaN }), /epsHigh must be a finite/);
  assert.throws(() => resolvePolicyLossOptions({ epsHigh: Infinity }), /epsHigh/);
  assert.throws(
    () => resolvePolicyLossOptions({ aggregation: "mean" as PolicyLossAggregation }),
    /aggregation must be one of "token-mean"/,
  );
  assert.throws(
    () => resolvePolicyLossOptions({ ratio: "none" as "clip" }),
    /ratio must be "clip" or "no-clip"/,
  );
  assert.throws(
    () =>
      policyLossRef(
        { B: 1, T: 2, logpNew: [0, 0], advantages: [1, 1], mask: [1, 1] },
        resolvePolicyLossOptions(),
      ),
    /needs logpRef/,
  );
});
