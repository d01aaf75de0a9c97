// The GPU policy loss (src/rl/policy_loss.ts, kernels/rl_policy_loss.wgsl) against the float64
// reference: loss, per-token terms, statistics and d loss/dℓ_new on random batches from many
// seeds (B and T of 1, odd, and past the 256-thread workgroup), every aggregation, both ratio
// modes, f32/u32/i32 masks, with and without a weight, fully rejected sequences, log-ratios beyond
// the ±20 clamp, −Inf log-probs, Â of both signs and 0, and non-finite inputs. Also: an
// all-rejected batch (loss +0, gradient 0, nothing NaN), the SPEC §10 ratio-1 sanity check,
// gradient accumulation through a sum of losses and through gatherLast(logSoftmax), the dispatch
// count, and the errors.
import assert from "node:assert/strict";
import { backward, ops } from "../src/autograd/mod.ts";
import { type HostArray, readAll, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import {
  decodePolicyLossStats,
  policyLoss,
  PolicyLossNonFiniteError,
  type PolicyLossResult,
} from "../src/rl/policy_loss.ts";
import {
  POLICY_LOSS_AGGREGATIONS,
  type PolicyLossAggregation,
  policyLossRef,
  type PolicyLossRefInputs,
  type PolicyLossStats,
  resolvePolicyLossOptions,
} from "../src/rl/policy_loss_reference.ts";
import { Rng } from "../src/util/rng.ts";
import { tallyDispatches } from "../src/gpu/mod.ts";
import { assertNoGpuErrors, setup } from "./autograd_util.ts";
import { randomPolicyBatch } from "./rl_policy_loss_util.ts";

type MaskDtype = "f32" | "u32" | "i32";

function upload(x: PolicyLossRefInputs, maskDtype: MaskDtype, withWeight = true) {
  const s = [x.B, x.T];
  const f = (a: ArrayLike<number>) => tensor(Float32Array.from(a), s);
  const m = maskDtype === "f32"
    ? f(x.mask)
    : tensor(maskDtype === "u32" ? Uint32Array.from(x.mask) : Int32Array.from(x.mask), s);
  return {
    logpRef: f(x.logpRef!),
    advantages: f(x.advantages),
    weight: withWeight ? f(x.weight!) : undefined,
    mask: m,
    leaf: () => {
      const t = f(x.logpNew);
      t.requiresGrad = true;
      return t;
    },
  };
}

// |got − want| ≤ atol + rtol·|want|, Infinity equal to Infinity; names the first bad element.
function close(
  what: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  atol: number,
  rtol: number,
) {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      assert.ok(Object.is(g, w) || g === w, `${what}[${i}]: got ${g}, want ${w}`);
      continue;
    }
    const e = Math.abs(g - w);
    assert.ok(e <= atol + rtol * Math.abs(w), `${what}[${i}]: got ${g}, want ${w}`);
    if (e > 0) worst = Math.max(worst, e / (atol + rtol * Math.abs(w)));
  }
  return worst;
}

// The statistics: counts exactly, ratios and sums to f32 rounding (`lossTol` for the loss).
function checkStats(what: string, got: PolicyLossStats, want: PolicyLossStats, lossTol: number) {
  for (
    const k of ["keptTokens", "keptSequences", "emptySequences", "clampedTokens"] as const
  ) assert.equal(got[k], want[k], `${what}: ${k}`);
  assert.deepEqual(got.nonFinite, want.nonFinite, `${what}: nonFinite`);
  assert.ok(Math.abs(got.loss - want.loss) <= lossTol, `${what}: loss ${got.loss} vs ${want.loss}`);
  for (
    const k of ["clipFraction", "clipLowFraction", "clipHighFraction", "meanRatio"] as const
  ) close(`${what}: ${k}`, [got[k]], [want[k]], 1e-7, 2e-5);
  close(`${what}: maxAbsLogRatio`, [got.maxAbsLogRatio], [want.maxAbsLogRatio], 1e-6, 1e-6);
}

// The loss's f32 error bound: rounding relative to Σ_b scale_b Σ_t |L_t|, not to |loss|.
function lossTolerance(terms: Float64Array, seqScale: Float64Array, T: number): number {
  let m = 0;
  for (let i = 0; i < terms.length; i++) m += Math.abs(terms[i]) * seqScale[Math.floor(i / T)];
  return 1e-6 + 2e-5 * m;
}

const SHAPES: [number, number][] = [[1, 1], [1, 300], [7, 257], [3, 1], [13, 5], [2, 513], [
  33,
  9,
], [5, 64]];

Deno.test("policyLoss: forward, statistics and gradient match the float64 reference", async () => {
  await setup();
  const worst = { loss: 0, terms: 0, grad: 0, lossRel: 0, gradAbs: 0 };
  for (let seed = 0; seed < 24; seed++) {
    const rng = new Rng(1000 + seed);
    const [B, T] = SHAPES[seed % SHAPES.length];
    const epsLow = seed % 5 === 4 ? 0 : 0.2, epsHigh = seed % 5 === 4 ? 0 : 0.28;
    const x = randomPolicyBatch(rng, B, T, {
      nonFinite: seed % 3 === 2,
      awayFromKinks: true,
      kinks: [1 - epsLow, 1 + epsHigh],
    });
    const maskDtype = (["f32", "u32", "i32"] as const)[seed % 3];
    const withWeight = seed % 4 !== 1;
    const up = upload(x, maskDtype, withWeight);
    const cases: { agg: PolicyLossAggregation; ratio: "clip" | "no-clip" }[] = [];
    for (const agg of POLICY_LOSS_AGGREGATIONS) {
      for (const ratio of ["clip", "no-clip"] as const) cases.push({ agg, ratio });
    }
    const leaves = cases.map(() => up.leaf());
    const outs = tidy(() =>
      cases.map((c, k) => {
        const r = policyLoss(
          { ...up, logpNew: leaves[k] },
          { aggregation: c.agg, ratio: c.ratio, epsLow, epsHigh },
        );
        backward(r.loss);
        return r;
      })
    );
    const got = await readAll(outs.flatMap((r, k) => [r.stats, r.terms, leaves[k].grad!]));
    assertNoGpuErrors();
    const xr = withWeight ? x : { ...x, weight: undefined };
    cases.forEach((c, k) => {
      const what = `seed ${seed} [${B},${T}] ${c.agg} ${c.ratio} mask ${maskDtype}`;
      const o = resolvePolicyLossOptions({ aggregation: c.agg, ratio: c.ratio, epsLow, epsHigh });
      const ref = policyLossRef(xr, o);
      const [st, terms, grad] = got.slice(3 * k, 3 * k + 3);
      const stats = decodePolicyLossStats(st, { onNonFinite: "report" });
      const tol = lossTolerance(ref.terms, ref.seqScale, T);
      checkStats(what, stats, ref.stats, tol);
      worst.loss = Math.max(worst.loss, Math.abs(stats.loss - ref.loss) / tol);
      worst.lossRel = Math.max(
        worst.lossRel,
        Math.abs(stats.loss - ref.loss) / Math.max(1e-30, Math.abs(ref.loss)),
      );
      for (let i = 0; i < grad.length; i++) {
        worst.gradAbs = Math.max(worst.gradAbs, Math.abs(grad[i] - ref.grad[i]));
      }
      worst.terms = Math.max(worst.terms, close(`${what} terms`, terms, ref.terms, 1e-6, 3e-5));
      const gmax = ref.grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      worst.grad = Math.max(worst.grad, close(`${what} grad`, grad, ref.grad, 1e-7 * gmax, 3e-5));
      assert.ok(grad.every(Number.isFinite), `${what}: non-finite gradient`);
    });
    for (const r of outs) disposeResult(r);
    for (const t of [...leaves, up.logpRef, up.advantages, up.weight, up.mask]) t?.dispose();
  }
  console.log(
    `policyLoss vs float64 (worst error / tolerance): loss ${worst.loss.toFixed(3)}, terms ${
      worst.terms.toFixed(3)
    }, grad ${worst.grad.toFixed(3)}; max |Δloss|/|loss| ${
      worst.lossRel.toExponential(2)
    }, max |Δgrad| ${worst.gradAbs.toExponential(2)}`,
  );
});

function disposeResult(r: PolicyLossResult) {
  r.loss.dispose();
  r.stats.dispose();
  r.terms.dispose();
}

Deno.test("policyLoss: an all-rejected batch gives loss +0, gradient 0, no NaN", async () => {
  await setup();
  for (const [B, T] of [[1, 1], [4, 300], [9, 3]]) {
    const n = B * T;
    const x: PolicyLossRefInputs = {
      B,
      T,
      logpNew: new Float64Array(n).fill(NaN), // padding garbage the loss must not read
      logpRef: new Float64Array(n).fill(-Infinity),
      advantages: new Float64Array(n).fill(NaN),
      weight: new Float64Array(n).fill(Infinity),
      mask: new Float64Array(n),
    };
    for (const maskDtype of ["f32", "u32"] as const) {
      const up = upload(x, maskDtype);
      const leaves = POLICY_LOSS_AGGREGATIONS.map(() => up.leaf());
      const outs = tidy(() =>
        POLICY_LOSS_AGGREGATIONS.map((aggregation, k) => {
          const r = policyLoss({ ...up, logpNew: leaves[k] }, { aggregation });
          backward(r.loss);
          return r;
        })
      );
      const got = await readAll(outs.flatMap((r, k) => [r.loss, r.stats, leaves[k].grad!]));
      assertNoGpuErrors();
      POLICY_LOSS_AGGREGATIONS.forEach((agg, k) => {
        const [loss, st, grad] = got.slice(3 * k, 3 * k + 3);
        assert.ok(Object.is(loss[0], 0), `[${B},${T}] ${agg}: loss ${loss[0]}`);
        assert.ok(grad.every((g) => g === 0), `[${B},${T}] ${agg}: gradient`);
        assert.ok(st.every(Number.isFinite), `[${B},${T}] ${agg}: stats ${st}`);
        const s = decodePolicyLossStats(st);
        assert.equal(s.emptySequences, B);
        assert.equal(s.keptTokens, 0);
        assert.equal(s.nonFinite.count, 0);
      });
      outs.forEach(disposeResult);
      for (const t of [...leaves, up.logpRef, up.advantages, up.weight!, up.mask]) t.dispose();
    }
  }
});

Deno.test("policyLoss: with ℓ_new = ℓ_ref every ratio is 1, loss = −aggregate(ρ·M·Â) (SPEC §10)", async () => {
  await setup();
  for (let seed = 0; seed < 4; seed++) {
    const [B, T] = SHAPES[(seed * 3 + 1) % SHAPES.length];
    const x = randomPolicyBatch(new Rng(2000 + seed), B, T);
    const up = upload(x, "u32");
    const leaves = POLICY_LOSS_AGGREGATIONS.map(() => up.leaf());
    // ε = 0 puts r = 1 on both clip bounds: a tie, where the unclipped branch keeps its gradient
    const eps = seed % 2 === 0 ? 0.2 : 0;
    const outs = tidy(() =>
      POLICY_LOSS_AGGREGATIONS.map((aggregation, k) => {
        // the same values as ℓ_ref: what a learning rate of 0 leaves
        const r = policyLoss({ ...up, logpNew: leaves[k], logpRef: leaves[k] }, {
          aggregation,
          epsLow: eps,
          epsHigh: eps,
        });
        backward(r.loss);
        return r;
      })
    );
    const got = await readAll(outs.flatMap((r, k) => [r.stats, leaves[k].grad!]));
    assertNoGpuErrors();
    POLICY_LOSS_AGGREGATIONS.forEach((aggregation, k) => {
      const s = decodePolicyLossStats(got[2 * k]);
      // −aggregate(ρ·M·Â) written out directly
      const perSeq: number[][] = [];
      for (let b = 0; b < B; b++) {
        const l: number[] = [];
        for (let t = 0; t < T; t++) {
          const i = b * T + t;
          if (x.mask[i] === 1 && Number.isFinite(x.advantages[i])) {
            l.push(x.weight[i] * x.advantages[i]);
          }
        }
        perSeq.push(l);
      }
      const sum = (v: number[]) => v.reduce((a, q) => a + q, 0);
      const kept = perSeq.flat();
      const means = perSeq.filter((l) => l.length).map((l) => sum(l) / l.length);
      const want = aggregation === "token-mean"
        ? -sum(kept) / Math.max(1, kept.length)
        : aggregation === "seq-mean-token-mean"
        ? -sum(means) / Math.max(1, means.length)
        : -sum(perSeq.map(sum)) / B;
      const mag = sum(kept.map(Math.abs));
      assert.ok(
        Math.abs(s.loss - want) <= 1e-6 + 1e-5 * mag,
        `${aggregation}: ${s.loss} vs ${want}`,
      );
      assert.equal(s.meanRatio, kept.length ? 1 : 0);
      assert.equal(s.clipFraction, 0);
      assert.equal(s.maxAbsLogRatio, 0);
      // and the gradient is the no-clip one: −ρ·Â·scale_b on every kept token
      const ref = policyLossRef(x, resolvePolicyLossOptions({ aggregation, ratio: "no-clip" }));
      close(`${aggregation} grad`, got[2 * k + 1], ref.grad, 1e-7, 2e-5);
    });
    outs.forEach(disposeResult);
    for (const t of [...leaves, up.logpRef, up.advantages, up.weight!, up.mask]) t.dispose();
  }
});

Deno.test("policyLoss: gradients of a sum of losses are the sum of the separate gradients", async () => {
  await setup();
  const B = 6, T = 37;
  const xa = randomPolicyBatch(new Rng(31), B, T, { awayFromKinks: true });
  const xb = randomPolicyBatch(new Rng(32), B, T, { awayFromKinks: true });
  const ua = upload(xa, "f32"), ub = upload(xb, "u32");
  const leaf = ua.leaf(); // one ℓ_new used by both losses (as the joint trainer's shared policy)
  const la = (t: Tensor) => policyLoss({ ...ua, logpNew: t }, { aggregation: "token-mean" }).loss;
  const lb = (t: Tensor) =>
    policyLoss({ ...ub, logpNew: t }, { aggregation: "seq-mean-token-mean", ratio: "no-clip" })
      .loss;
  const grads: HostArray[] = [];
  for (const f of [(t: Tensor) => la(t), (t: Tensor) => lb(t)]) {
    tidy(() => backward(f(leaf)));
    grads.push((await readAll([leaf.grad!]))[0]);
    leaf.grad!.dispose();
    leaf.grad = null;
  }
  // 0.5·la + lb: each loss's backward reads its share of the sum's gradient on the GPU
  tidy(() => backward(ops.add(ops.mul(la(leaf), 0.5), lb(leaf))));
  const [joint] = await readAll([leaf.grad!]);
  assertNoGpuErrors();
  const want = grads[0].map((g, i) => 0.5 * g + grads[1][i]);
  close("0.5·la + lb", joint, want, 1e-7, 1e-5);
  // and both against the float64 reference
  const ra = policyLossRef(xa, resolvePolicyLossOptions());
  const rb = policyLossRef(
    { ...xb, logpNew: xa.logpNew },
    resolvePolicyLossOptions({ aggregation: "seq-mean-token-mean", ratio: "no-clip" }),
  );
  close("vs reference", joint, ra.grad.map((g, i) => 0.5 * g + rb.grad[i]), 1e-6, 3e-5);
  for (const t of [leaf, ua.logpRef, ua.advantages, ua.weight!, ua.mask]) t.dispose();
  for (const t of [ub.logpRef, ub.advantages, ub.weight!, ub.mask]) t.dispose();
});

Deno.test("policyLoss: the gradient reaches logits through gatherLast(logSoftmax)", async () => {
  await setup();
  const B = 3, T = 5, V = 11, rng = new Rng(77);
  const logits = Float32Array.from({ length: B * T * V }, () => rng.normal());
  const ids = Int32Array.from({ length: B * T }, () => rng.int(V));
  // ℓ_new in float64 from the same logits; ℓ_ref a perturbation of it
  const lnew = new Float64Array(B * T);
  for (let r = 0; r < B * T; r++) {
    const row = logits.subarray(r * V, (r + 1) * V);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    lnew[r] = row[ids[r]] - lse;
  }
  const x = randomPolicyBatch(rng, B, T, { awayFromKinks: true, negInf: false, beyondClamp: 0 });
  const lref = lnew.map((v) => Math.fround(v + 0.3 * rng.normal()));
  const up = upload({ ...x, logpRef: lref }, "f32");
  const lg = tensor(logits, [B, T, V]);
  lg.requiresGrad = true;
  tidy(() => {
    const lp = ops.gatherLast(ops.logSoftmax(lg), tensor(ids, [B, T]));
    backward(policyLoss({ ...up, logpNew: lp }).loss);
  });
  const [dl] = await readAll([lg.grad!]);
  assertNoGpuErrors();
  const ref = policyLossRef({ ...x, logpNew: lnew, logpRef: lref }, resolvePolicyLossOptions());
  const want = new Float64Array(B * T * V);
  for (let r = 0; r < B * T; r++) {
    const row = logits.subarray(r * V, (r + 1) * V);
    const m = Math.max(...row);
    const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
    for (let v = 0; v < V; v++) {
      want[r * V + v] = ref.grad[r] * ((v === ids[r] ? 1 : 0) - Math.exp(row[v] - m) / z);
    }
  }
  close("d loss/d logits", dl, want, 1e-6, 1e-4);
  for (const t of [lg, up.logpRef, up.advantages, up.weight!, up.mask]) t.dispose();
});

Deno.test("policyLoss: 2 dispatches forward, 1 backward; a strided Â costs one copy", async () => {
  const rt = await setup();
  const B = 4, T = 9;
  const x = randomPolicyBatch(new Rng(5), B, T, { awayFromKinks: true });
  const up = upload(x, "u32");
  const leaf = up.leaf();
  let loss: Tensor | null = null;
  const fwd = tallyDispatches(() => (loss = policyLoss({ ...up, logpNew: leaf }).loss));
  assert.deepEqual(fwd, { "rl_policy_loss:pl_rows": 1, "rl_policy_loss:pl_finalize": 1 });
  const bwd = tallyDispatches(() => tidy(() => backward(loss!)));
  // the loss's own: one; the rest is the tape's (the root's gradient 1, the leaf's .grad)
  assert.equal(bwd["rl_policy_loss:pl_bwd"], 1);
  assert.equal(Object.keys(bwd).filter((k) => k.startsWith("rl_policy_loss")).length, 1);
  // per-sequence advantages expanded over T (a stride-0 view): one copy, the same loss
  const perSeq = Float32Array.from({ length: B }, (_, b) => x.advantages[b * T]);
  const advSeq = tensor(perSeq, [B, 1]);
  const dense = tensor(Float32Array.from({ length: B * T }, (_, i) => perSeq[Math.floor(i / T)]), [
    B,
    T,
  ]);
  let pair: Tensor[] = [];
  const strided = tallyDispatches(() => {
    pair = [
      policyLoss({ ...up, logpNew: leaf, advantages: ops.expand(advSeq, [B, T]) }).loss,
      policyLoss({ ...up, logpNew: leaf, advantages: dense }).loss,
    ];
  });
  assert.equal(strided["rl_policy_loss:pl_rows"], 2);
  assert.equal(Object.values(strided).reduce((a, b) => a + b, 0), 5); // + the expand's copy
  const [a, b] = await readAll(pair);
  assert.equal(a[0], b[0]);
  assertNoGpuErrors();
  rt.flush();
  for (
    const t of [leaf, advSeq, dense, loss!, ...pair, up.logpRef, up.advantages, up.weight!, up.mask]
  ) {
    t.dispose();
  }
});

Deno.test("policyLoss: non-finite tokens are counted and raise at decode unless reported", async () => {
  await setup();
  const x: PolicyLossRefInputs = {
    B: 2,
    T: 3,
    logpNew: [-1, NaN, -1, -1, -Infinity, -1],
    logpRef: [-1, -1, Infinity, -1, -2, -1],
    advantages: [1, 1, 1, 1, 1, NaN],
    weight: [1, 1, 1, 1, 1, 1],
    mask: [1, 1, 1, 0, 1, 1],
  };
  const up = upload(x, "f32");
  const leaf = up.leaf();
  const r = tidy(() => {
    const r = policyLoss({ ...up, logpNew: leaf });
    backward(r.loss);
    return r;
  });
  const [st, grad] = await readAll([r.stats, leaf.grad!]);
  assertNoGpuErrors();
  assert.throws(() => decodePolicyLossStats(st), (e: unknown) => {
    assert.ok(e instanceof PolicyLossNonFiniteError);
    assert.equal(e.count, 3);
    assert.equal(e.first, 1);
    assert.match(e.message, /3 token\(s\).*first: token 1/);
    return true;
  });
  const s = decodePolicyLossStats(st, { onNonFinite: "report" });
  const ref = policyLossRef(x, resolvePolicyLossOptions());
  checkStats("non-finite", s, ref.stats, 1e-6);
  assert.ok(grad.every(Number.isFinite));
  disposeResult(r);
  for (const t of [leaf, up.logpRef, up.advantages, up.weight!, up.mask]) t.dispose();
});

Deno.test("policyLoss: bad inputs are named with their shapes", async () => {
  await setup();
  const f = (shape: number[], v = 0) =>
    tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v), shape);
  const ok = () => ({
    logpNew: f([2, 3]),
    logpRef: f([2, 3]),
    advantages: f([2, 3]),
    weight: f([2, 3], 1),
    mask: f([2, 3], 1),
  });
  const base = ok();
  const cases: [string, () => unknown, RegExp][] = [
    ["rank", () => policyLoss({ ...base, logpNew: f([6]) }), /logpNew must be \[B, T\].*got \[6\]/],
    ["empty", () => policyLoss({ ...base, logpNew: f([0, 3]) }), /B, T >= 1, got \[0,3\]/],
    [
      "shape",
      () => policyLoss({ ...base, advantages: f([2, 4]) }),
      /policyLoss: advantages \[2,4\] must have the shape of logpNew \[2,3\]/,
    ],
    [
      "mask shape",
      () => policyLoss({ ...base, mask: tensor(new Uint32Array(3), [3, 1]) }),
      /mask \[3,1\] must have the shape of logpNew \[2,3\]/,
    ],
    [
      "dtype",
      () => policyLoss({ ...base, weight: tensor(new Int32Array(6), [2, 3]) }),
      /policyLoss: weight must be a f32 tensor, got Tensor i32 \[2,3\]/,
    ],
    [
      "logpNew dtype",
      () => policyLoss({ ...base, logpNew: tensor(new Uint32Array(6), [2, 3]) }),
      /logpNew must be a f32 tensor/,
    ],
    [
      "no ref",
      () => policyLoss({ ...base, logpRef: undefined }),
      /ratio "clip" needs logpRef/,
    ],
    [
      "eps",
      () => policyLoss(base, { epsLow: -0.1 }),
      /policyLoss: epsLow must be a finite number >= 0/,
    ],
    ["eps NaN", () => policyLoss(base, { epsHigh: NaN }), /epsHigh must be a finite/],
    [
      "aggregation",
      () => policyLoss(base, { aggregation: "sum" as PolicyLossAggregation }),
      /aggregation must be one of/,
    ],
  ];
  for (const [name, fn, re] of cases) assert.throws(fn, re, name);
  // no-clip needs no ℓ_ref
  const r = policyLoss({ ...base, logpRef: undefined }, { ratio: "no-clip" });
  const [loss] = await readAll([r.loss]);
  assert.ok(Object.is(loss[0], 0)); // Â = 0 everywhere: +0
  const released = f([2, 3]);
  released.dispose();
  assert.throws(() => policyLoss({ ...base, advantages: released }), /used after release/);
  assert.throws(
    () => decodePolicyLossStats(new Float32Array(4)),
    /decodePolicyLossStats: 4 values, expected 16/,
  );
  disposeResult(r);
  for (const t of Object.values(base)) t.dispose();
});
