/**
 * `jackpotTensors` (src/rl/jackpot_tensors.ts) against the float64 reference (`obrsBatch`,
 * `obrsBatchTopK`) on random logits with ties, -Inf entries, peaked and flat rows: mask, w, ρ,
 * Z_approx, log a and statistics; logits over one storage binding (row tiles) give the same bits;
 * strided inputs equal contiguous ones; no readback or submit while recording; the raw buffers
 * are released (also after `recordInto`); non-finite rows are reported at decode; bad inputs fail
 * with one sentence and record nothing.
 */
import assert from "node:assert/strict";
import { obrsBatch, obrsBatchTopK, topkIds } from "../src/obrs/reference/mod.ts";
import { NonFiniteInputError } from "../src/obrs/gpu/mod.ts";
import { ComputeBatch } from "../src/gpu/mod.ts";
import { ops } from "../src/autograd/mod.ts";
import { readAll, runtime, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import {
  type JackpotTensorInputs,
  jackpotTensors,
  jackpotTensorsLive,
} from "../src/rl/jackpot_tensors.ts";
import { makeBatch } from "./obrs_gpu_util.ts";
import { assertNoGpuErrors, atBindingLimit, setup } from "./autograd_util.ts";
import { compareJackpot, type JackpotHost } from "./rl_jackpot_util.ts";

type Batch = ReturnType<typeof makeBatch>;

// [B, T, V] tensors of a makeBatch batch (rows = B·T).
function tensors(b: Batch, B: number) {
  const T = b.rows / B, V = b.vocab;
  const refSampled = Float32Array.from(b.tokens, (t, r) => b.logpRef[r * V + t]);
  return {
    policy: tensor(b.nw, [B, T, V]),
    actor: tensor(b.inf, [B, T, V]),
    ref: tensor(b.ref, [B, T, V]),
    tokens: tensor(Int32Array.from(b.tokens), [B, T]),
    valid: tensor(Uint32Array.from(b.valid), [B, T]),
    logpRef: tensor(refSampled, [B, T]),
  };
}

// The captured top-k of p_inf, as a rollout records it (reversed: any order is allowed).
function captured(b: Batch, K: number) {
  const V = b.vocab;
  const ids = new Int32Array(b.rows * K), logp = new Float32Array(b.rows * K);
  for (let r = 0; r < b.rows; r++) {
    const row = b.logpInf.subarray(r * V, (r + 1) * V);
    topkIds(row, K).reverse().forEach((id, j) => {
      ids[r * K + j] = id;
      logp[r * K + j] = row[id];
    });
  }
  const sampled = Float32Array.from(b.tokens, (t, r) => b.logpInf[r * V + t]);
  return { ids, logp, sampled };
}

async function readHost(jt: ReturnType<typeof jackpotTensors>): Promise<JackpotHost> {
  const [mask, rho, w, rowData, stats] = await readAll([
    jt.mask,
    jt.rho,
    jt.w,
    jt.rowData!,
    jt.stats,
  ]);
  return {
    mask: mask as Uint32Array,
    rho: rho as Float32Array,
    w: w as Float32Array,
    rowData: rowData as Float32Array,
    stats: jt.decode(stats),
  };
}

Deno.test("jackpotTensors: full actor logits, both targets, against obrsBatch", async () => {
  await setup();
  for (
    const [seed, B, V, k, lambda, target] of [
      [1, 4, 320, 20, 1, "new"],
      [2, 3, 97, 5, 0.7, "ref"],
      [3, 1, 64, 64, 2, "new"],
    ] as const
  ) {
    const b = makeBatch(seed, B * 11, V);
    const opts = { lambda, k, c1: 2, c2: 1.5, target, seed: 100 + seed };
    const want = obrsBatch({
      vocab: V,
      logpInf: b.logpInf,
      logpRef: b.logpRef,
      logpNew: b.logpNew,
      ids: Int32Array.from(b.tokens),
      valid: b.valid,
    }, opts);
    const t = tensors(b, B);
    const reads = runtime().counters.reads, submits = runtime().counters.submits;
    const jt = jackpotTensors(
      {
        policyLogits: t.policy,
        actor: { logits: t.actor },
        tokens: t.tokens,
        valid: t.valid,
        logpRef: target === "new" ? t.logpRef : undefined,
        refLogits: target === "ref" ? t.ref : undefined,
      },
      opts,
      { rowData: true },
    );
    assert.equal(runtime().counters.reads, reads, "no readback while recording");
    assert.equal(runtime().counters.submits, submits, "nothing submitted while recording");
    assert.deepEqual(jt.mask.shape, [B, 11]);
    assert.equal(jt.mask.dtype, "u32");
    const got = await readHost(jt);
    const e = compareJackpot(`seed ${seed} ${target}`, want, got, b.valid, opts.seed);
    console.log(
      `seed ${seed} ${target}: |ΔZ_approx| ${e.z.toExponential(1)}, |Δlog a| ${
        e.logA.toExponential(1)
      }, rel Δw/ρ ${e.weights.toExponential(1)}, rel Δstats ${e.stats.toExponential(1)}, ` +
        `straddles ${e.straddles}, ᾱ ${got.stats.acceptRate.toFixed(3)}`,
    );
    jt.stats.dispose();
    for (const x of [jt.mask, jt.rho, jt.w, jt.rowData!, ...Object.values(t)]) x.dispose();
  }
  assert.equal(jackpotTensorsLive(), 0, "every recording released");
  assertNoGpuErrors();
});

Deno.test("jackpotTensors: captured top-k (host arrays and tensors) against obrsBatchTopK", async () => {
  await setup();
  const B = 5, T = 5, V = 400, K = 12;
  for (const [seed, withFull, asTensors] of [[11, false, false], [12, true, true]] as const) {
    const b = makeBatch(seed, B * T, V);
    const c = captured(b, K);
    const opts = { lambda: 1.2, k: 8, c1: 3, c2: 3, target: "new" as const, seed: 7 };
    const want = obrsBatchTopK({
      vocab: V,
      capturedK: K,
      logpRef: b.logpRef,
      logpNew: b.logpNew,
      ids: Int32Array.from(b.tokens),
      valid: b.valid,
      infTopIds: c.ids,
      infTopLogp: Float64Array.from(c.logp),
      infSampledLogp: Float64Array.from(c.sampled),
      logpInfFull: withFull ? b.logpInf : undefined,
    }, opts);
    const t = tensors(b, B);
    const topk = asTensors
      ? {
        topkIds: tensor(c.ids, [B, T, K]),
        topkLogp: tensor(c.logp, [B, T, K]),
        sampledLogp: tensor(c.sampled, [B, T]),
      }
      : { topkIds: c.ids, topkLogp: c.logp, sampledLogp: c.sampled };
    const jt = jackpotTensors(
      {
        policyLogits: t.policy,
        actor: { ...topk, capturedK: K, logits: withFull ? t.actor : undefined },
        tokens: asTensors ? t.tokens : Int32Array.from(b.tokens),
        valid: asTensors ? t.valid : b.valid,
        logpRef: asTensors
          ? t.logpRef
          : Float32Array.from(b.tokens, (x, r) => b.logpRef[r * V + x]),
      },
      opts,
      { rowData: true },
    );
    const got = await readHost(jt);
    const e = compareJackpot(`top-k seed ${seed}`, want, got, b.valid, opts.seed);
    console.log(
      `top-k seed ${seed} (full ${withFull}, tensors ${asTensors}): |ΔZ_approx| ${
        e.z.toExponential(1)
      }, rel Δw/ρ ${e.weights.toExponential(1)}, straddles ${e.straddles}`,
    );
    jt.stats.dispose();
    for (const x of [jt.mask, jt.rho, jt.w, jt.rowData!, ...Object.values(t)]) x.dispose();
    if (asTensors) { for (const x of Object.values(topk)) (x as Tensor).dispose(); }
  }
  assert.equal(jackpotTensorsLive(), 0);
  assertNoGpuErrors();
});

// Runs one jackpotTensors call and reads every output back (raw bits).
async function runAll(x: JackpotTensorInputs, seed: number) {
  const jt = jackpotTensors(x, { lambda: 1, k: 6, seed, exactZ: true }, { rowData: true });
  const out = await readAll([jt.mask, jt.rho, jt.w, jt.rowData!, jt.stats]);
  jt.stats.dispose();
  for (const t of [jt.mask, jt.rho, jt.w, jt.rowData!]) t.dispose();
  return out.map((a) => new Uint32Array(a.buffer, a.byteOffset, a.length));
}

Deno.test("jackpotTensors: logits over one storage binding (row tiles) and strided inputs give the same bits", async () => {
  await setup();
  // 320 f32 = 1280 bytes per row, a multiple of the 256-byte offset alignment: 3 rows per tile.
  const B = 4, T = 9, V = 320;
  const b = makeBatch(21, B * T, V);
  const t = tensors(b, B);
  const c = captured(b, 6);
  const input = (): JackpotTensorInputs => ({
    policyLogits: t.policy,
    actor: {
      topkIds: c.ids,
      topkLogp: c.logp,
      sampledLogp: c.sampled,
      capturedK: 6,
      logits: t.actor,
    },
    tokens: t.tokens,
    valid: t.valid,
    logpRef: t.logpRef,
  });
  const [whole, d1] = await atBindingLimit(null, () => runAll(input(), 5));
  const [tiled, d2] = await atBindingLimit(4096, () => runAll(input(), 5));
  console.log(`dispatches: ${d1} in one binding, ${d2} with 4 KiB bindings`);
  assert.ok(d2 > d1, "the tiled run took more dispatches");
  whole.forEach((a, i) => assert.deepEqual(tiled[i], a, `output ${i} differs with row tiles`));
  // Strided views: tokens and ℓ_ref as transposes of transposes, logits as a slice along T.
  const wide = tensor(new Float32Array(B * (T + 2) * V).fill(-3), [B, T + 2, V]);
  const strided = tidy(() => {
    const tt = ops.transpose(ops.contiguous(ops.transpose(t.tokens)));
    const lr = ops.transpose(ops.contiguous(ops.transpose(t.logpRef)));
    const pad = ops.concat([ops.slice(wide, 1, 0, 1), t.policy, ops.slice(wide, 1, T + 1)], 1);
    return { tt, lr, pad };
  });
  assert.ok(!strided.tt.isContiguous && !strided.lr.isContiguous);
  const view = ops.slice(strided.pad, 1, 1, T + 1);
  assert.ok(!view.isContiguous || view.offset !== 0);
  const again = await runAll({
    ...input(),
    policyLogits: view,
    tokens: strided.tt,
    logpRef: strided.lr,
  }, 5);
  whole.forEach((a, i) => assert.deepEqual(again[i], a, `output ${i} differs for strided inputs`));
  for (const x of [...Object.values(t), ...Object.values(strided), view, wide]) x.dispose();
  assert.equal(jackpotTensorsLive(), 0);
  assertNoGpuErrors();
});

Deno.test("jackpotTensors: release inside recordInto waits for the caller's submit", async () => {
  const rt = await setup();
  const B = 2, T = 3, V = 64;
  const b = makeBatch(31, B * T, V);
  const t = tensors(b, B);
  const batch = new ComputeBatch(rt.gpu);
  const live = jackpotTensorsLive();
  const copies = rt.recordInto(batch, () =>
    tidy(() => {
      const jt = jackpotTensors({
        policyLogits: t.policy,
        actor: { logits: t.actor },
        tokens: t.tokens,
        logpRef: t.logpRef,
      }, { seed: 3, k: 4 });
      // stats is disposed at the end of this tidy, before the batch is submitted: deferred
      return ops.add(jt.rho, ops.mul(jt.w, 0));
    }));
  assert.equal(jackpotTensorsLive(), live + 1, "buffers kept until the batch is submitted");
  batch.submit();
  const [rho] = await readAll([copies]);
  assert.ok(rho.some((x) => x > 0), "the recorded work ran");
  // The next call outside recordInto destroys the deferred buffers.
  const jt = jackpotTensors({
    policyLogits: t.policy,
    actor: { logits: t.actor },
    tokens: t.tokens,
    logpRef: t.logpRef,
  }, { seed: 3, k: 4 });
  assert.equal(jackpotTensorsLive(), live + 1);
  jt.release();
  jt.release(); // idempotent
  assert.equal(jackpotTensorsLive(), live);
  for (const x of [jt.mask, jt.rho, jt.w, jt.stats, copies, ...Object.values(t)]) x.dispose();
  assertNoGpuErrors();
});

Deno.test("jackpotTensors: non-finite logits are zeroed and reported at decode", async () => {
  await setup();
  const B = 2, T = 4, V = 64;
  const b = makeBatch(41, B * T, V);
  b.nw[3 * V + 5] = NaN; // row 3 of the policy
  const t = tensors(b, B);
  for (const onNonFinite of ["throw", "report"] as const) {
    const jt = jackpotTensors({
      policyLogits: t.policy,
      actor: { logits: t.actor },
      tokens: t.tokens,
      logpRef: t.logpRef,
    }, { seed: 1, k: 4, onNonFinite });
    const [mask, rho, raw] = await readAll([jt.mask, jt.rho, jt.stats]);
    assert.equal(mask[3], 0);
    assert.equal(rho[3], 0);
    if (onNonFinite === "throw") {
      assert.throws(() => jt.decode(raw), (e) => e instanceof NonFiniteInputError && e.count === 1);
    } else {
      assert.deepEqual(jt.decode(raw).nonFinite, { count: 1, firstRow: 3 });
    }
    assert.throws(() => jt.decode(raw.subarray(1)), /32 values/);
    jt.stats.dispose();
    for (const x of [jt.mask, jt.rho, jt.w]) x.dispose();
  }
  for (const x of Object.values(t)) x.dispose();
  assertNoGpuErrors();
});

Deno.test("jackpotTensors: bad inputs fail with one sentence and record nothing", async () => {
  const rt = await setup();
  const B = 2, T = 3, V = 16;
  const b = makeBatch(51, B * T, V);
  const t = tensors(b, B);
  const base: JackpotTensorInputs = {
    policyLogits: t.policy,
    actor: { logits: t.actor },
    tokens: t.tokens,
    logpRef: t.logpRef,
  };
  const f32Tokens = tensor(new Float32Array(B * T), [B, T]);
  const cases: [Partial<JackpotTensorInputs>, Record<string, unknown>, RegExp][] = [
    [{ tokens: f32Tokens }, {}, /tokens: expected a i32 or u32 tensor/],
    [{ tokens: new Int32Array(5) }, {}, /tokens has 5 values, expected 6 \[2,3\]/],
    [
      { logpRef: tensor(new Float32Array(B * T), [T, B]) },
      {},
      /logpRef .* must have shape \[2,3\]/,
    ],
    [{ actor: { logits: t.logpRef } }, {}, /actor.logits .* must have shape \[2,3,16\]/],
    [{ policyLogits: ops.reshape(t.logpRef, [6]) }, {}, /at least one token axis/],
    [{ actor: {} as JackpotTensorInputs["actor"] }, {}, /actor needs logits/],
    [
      {
        actor: {
          topkIds: new Int32Array(6),
          topkLogp: new Float32Array(6),
          capturedK: 2,
          sampledLogp: new Float32Array(6),
        },
      },
      {},
      /actor.topkIds has 6 values, expected 12/,
    ],
    [{}, { k: 17 }, /k = 17 exceeds the vocabulary size V = 16/],
    [{}, { lambda: 0 }, /lambda must be a finite number > 0/],
    [{ logpRef: undefined }, {}, /target "new" needs p_ref/],
    [{}, { target: "ref" }, /target "ref" needs p_ref logits/],
  ];
  const live = jackpotTensorsLive();
  for (const [patch, params, re] of cases) {
    const before = rt.counters.dispatches;
    assert.throws(
      () => jackpotTensors({ ...base, ...patch }, { seed: 1, k: 4, ...params }),
      re,
    );
    assert.equal(rt.counters.dispatches, before, `recorded work for ${re}`);
    assert.equal(jackpotTensorsLive(), live, `kept buffers for ${re}`);
  }
  for (const x of [f32Tokens, ...Object.values(t)]) x.dispose();
  rt.flush();
  assertNoGpuErrors();
});
