// Mismatch metrics (src/rl/mismatch.ts) against the float64 reference (src/rl/mismatch_reference.ts):
// token log-probs that differ by nothing, by 1e-7 .. 1e-3, by O(1), beyond the ±20 clamp, with
// -inf and NaN entries (kept and masked), masks (f32, u32, none kept); logits rows (policy alone,
// policy and actor) with -inf entries and odd V; the p95 within the histogram's stated bound; one
// readback for everything; logits over a lowered binding limit equal to one binding.
import assert from "node:assert/strict";
import { readAll, runtime, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { decodeMismatch, type MismatchStats, mismatchStats } from "../src/rl/mismatch.ts";
import {
  HIST_PER_DECADE,
  mismatchRef,
  type MismatchRefInputs,
} from "../src/rl/mismatch_reference.ts";
import { assertNoGpuErrors, atBindingLimit, setup } from "./autograd_util.ts";

const BIN = 10 ** (1 / HIST_PER_DECADE);

function tokens(rng: Rng, n: number, scale: number): [Float32Array, Float32Array] {
  const li = new Float32Array(n), ln = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    li[i] = -Math.abs(rng.normal()) * 3;
    const kind = rng.int(6);
    const d = kind === 0 ? 0 : kind === 5 ? rng.normal() * 30 : rng.normal() * scale;
    ln[i] = li[i] + d;
  }
  return [li, ln];
}

function logits(rng: Rng, N: number, V: number, holes: boolean): Float32Array {
  const x = new Float32Array(N * V);
  for (let i = 0; i < x.length; i++) {
    x[i] = holes && i % 7 === 3 ? -Infinity : rng.normal() * 2;
  }
  return x;
}

interface Case extends MismatchRefInputs {
  maskU32?: boolean;
}

async function gpu(c: Case, shape: number[]): Promise<[MismatchStats, number, number]> {
  const up = (a: ArrayLike<number> | undefined, sh?: number[], u32 = false): Tensor | undefined =>
    a ? (u32 ? tensor(Uint32Array.from(a), sh) : tensor(Float32Array.from(a), sh)) : undefined;
  const V = c.V ?? 1;
  const li = up(c.logpInf, shape)!, ln = up(c.logpNew, shape)!;
  const mask = up(c.mask, undefined, c.maskU32);
  const pl = up(c.policyLogits, c.policyLogits && [c.policyLogits.length / V, V]);
  const al = up(c.actorLogits, c.actorLogits && [c.actorLogits.length / V, V]);
  const rm = up(c.rowMask);
  const rt = runtime();
  rt.flush();
  const [d0, r0] = [rt.counters.dispatches, rt.counters.reads];
  const out = tidy(() =>
    mismatchStats({
      logpInf: li,
      logpNew: ln,
      mask,
      policyLogits: pl,
      actorLogits: al,
      rowMask: rm,
      temperature: c.temperature,
    })
  );
  const dispatches = rt.counters.dispatches - d0;
  const [host] = await readAll([out]);
  const reads = rt.counters.reads - r0;
  for (const t of [li, ln, mask, pl, al, rm, out]) t?.dispose();
  assertNoGpuErrors();
  return [decodeMismatch(host), dispatches, reads];
}

function near(what: string, got: number | null, want: number | null, atol: number, rtol: number) {
  if (want === null || got === null) {
    assert.equal(got, want, what);
    return 0;
  }
  const err = Math.abs(got - want);
  assert.ok(err <= atol + rtol * Math.abs(want), `${what}: got ${got}, want ${want}`);
  return err / (atol + rtol * Math.abs(want));
}

function compare(what: string, g: MismatchStats, r: MismatchStats): number {
  for (const k of ["tokens", "nonFiniteTokens", "rows", "nonFiniteRows"] as const) {
    assert.equal(g[k], r[k], `${what}: ${k}`);
  }
  let worst = 0;
  const f = (
    k: keyof MismatchStats,
    atol: number,
    rtol: number,
  ) => (worst = Math.max(worst, near(`${what}: ${k}`, g[k] as number, r[k] as number, atol, rtol)));
  f("k1", 1e-6, 1e-4);
  f("k3", 1e-6, 1e-4);
  f("absLogRatioMean", 1e-6, 1e-4);
  f("absLogRatioMax", 1e-6, 1e-5);
  f("logRatioMax", 1e-6, 1e-5);
  f("logRatioMin", 1e-6, 1e-5);
  f("entropyPolicy", 1e-5, 1e-4);
  f("entropyActor", 1e-5, 1e-4);
  f("klActorPolicy", 1e-5, 1e-4);
  f("klPolicyActor", 1e-5, 1e-4);
  // the stated p95 bound: exact ≤ GPU ≤ one bin above it (or ≤ 1e-6), up to f32 rounding at edges
  const p = g.absLogRatioP95, e = r.absLogRatioP95;
  assert.ok(p >= e * (1 - 1e-5) - 1e-7, `${what}: p95 ${p} below the exact ${e}`);
  assert.ok(
    p <= Math.max(e * BIN * (1 + 1e-5), 1e-6 * (1 + 1e-5)) + 1e-7,
    `${what}: p95 ${p} more than one bin above the exact ${e}`,
  );
  // histograms: the same counts, but for values on a bin edge that f32 and float64 place apart
  let moved = 0;
  g.histogram.forEach((v, i) => (moved += Math.abs(v - r.histogram[i])));
  assert.ok(moved <= 2, `${what}: histograms differ by ${moved} counts`);
  return worst;
}

Deno.test("mismatchStats: token metrics and p95 match float64 (many seeds, masks, non-finite)", async () => {
  await setup();
  let worst = 0, worstP95 = 1;
  for (let seed = 0; seed < 24; seed++) {
    const rng = new Rng(500 + seed);
    const B = 1 + rng.int(5), T = 1 + rng.int(90);
    const n = B * T;
    const scale = [1e-7, 1e-4, 1e-2, 0.3, 3][seed % 5];
    const [li, ln] = tokens(rng, n, scale);
    if (seed % 3 === 0) {
      li[rng.int(n)] = -Infinity;
      ln[rng.int(n)] = NaN;
    }
    const maskKind = seed % 4; // none, f32, u32, none kept
    const mask = maskKind === 0
      ? undefined
      : Array.from({ length: n }, () => (maskKind === 3 ? 0 : rng.uniform() < 0.8 ? 1 : 0));
    const c: Case = { logpInf: li, logpNew: ln, mask, maskU32: maskKind === 2 };
    const [g, dispatches, reads] = await gpu(c, [B, T]);
    const r = mismatchRef(c);
    worst = Math.max(worst, compare(`seed ${seed} scale ${scale}`, g, r));
    if (r.absLogRatioP95 > 1e-6) worstP95 = Math.max(worstP95, g.absLogRatioP95 / r.absLogRatioP95);
    assert.equal(dispatches, 1);
    assert.equal(reads, 1);
    assert.equal(g.entropyPolicy, null);
  }
  console.log(
    `mismatch tokens vs float64: worst error ${worst.toFixed(3)} of tolerance; ` +
      `p95 GPU / exact at most ${worstP95.toFixed(4)} (bound ${BIN.toFixed(4)})`,
  );
});

Deno.test("mismatchStats: entropy and full-vocabulary KLs from logits match float64", async () => {
  await setup();
  let worst = 0;
  for (let seed = 0; seed < 12; seed++) {
    const rng = new Rng(900 + seed);
    const V = [1, 5, 8, 33, 260, 1031][seed % 6];
    const B = 2, T = 1 + rng.int(6), N = B * T;
    const [li, ln] = tokens(rng, N, 0.1);
    const policy = logits(rng, N, V, seed % 2 === 0);
    const actor = Float32Array.from(policy, (x) => Math.fround(x + 0.5 * rng.normal()));
    if (seed === 3) policy.fill(-Infinity, 0, V); // an invalid row: counted, left out
    const mask = Array.from({ length: N }, (_, i) => (i % 4 === 2 ? 0 : 1));
    const withActor = seed % 3 !== 1;
    const c: Case = {
      logpInf: li,
      logpNew: ln,
      mask,
      policyLogits: policy,
      actorLogits: withActor ? actor : undefined,
      V,
      temperature: seed % 2 ? 0.8 : 1,
      rowMask: seed % 5 === 4 ? Array.from({ length: N }, () => 1) : undefined,
    };
    const [g, dispatches] = await gpu(c, [B, T]);
    const r = mismatchRef(c);
    worst = Math.max(worst, compare(`logits seed ${seed} V=${V}`, g, r));
    assert.equal(dispatches, 2);
    if (seed === 3) assert.ok(r.nonFiniteRows > 0);
  }
  console.log(`mismatch logits vs float64: worst error ${worst.toFixed(3)} of tolerance`);
});

Deno.test("mismatchStats: logits over several storage bindings equal one binding", async () => {
  await setup();
  const rng = new Rng(4);
  const N = 11, V = 300;
  const [li, ln] = tokens(rng, N, 0.05);
  const c: Case = {
    logpInf: li,
    logpNew: ln,
    policyLogits: logits(rng, N, V, true),
    actorLogits: logits(rng, N, V, false),
    V,
  };
  const [one] = await atBindingLimit(null, () => gpu(c, [N]));
  const [split] = await atBindingLimit(8192, () => gpu(c, [N])); // ~6 rows of 1200 bytes a block
  assert.ok(split[1] > one[1], `${split[1]} vs ${one[1]} dispatches: the logits were not split`);
  assert.deepEqual(split[0], one[0]);
  compare("split", split[0], mismatchRef(c));
});

Deno.test("mismatchStats refuses bad input with a message naming it", async () => {
  await setup();
  const a = tensor([-1, -2, -3]), b = tensor([-1, -2]), l = tensor([0, 1, 2, 3], [2, 2]);
  assert.throws(() => mismatchStats({ logpInf: a, logpNew: b }), /need the same shape/);
  assert.throws(() => mismatchStats({ logpInf: a, logpNew: a, mask: b }), /mask .* needs 3 values/);
  assert.throws(
    () => mismatchStats({ logpInf: a, logpNew: a, actorLogits: l }),
    /actorLogits need policyLogits/,
  );
  assert.throws(
    () => mismatchStats({ logpInf: a, logpNew: a, policyLogits: l, rowMask: a }),
    /rowMask .* needs 2 values/,
  );
  assert.throws(() => decodeMismatch(new Float32Array(3)), /3 values/);
  for (const t of [a, b, l]) t.dispose();
});
