/**
 * The split-row top-k (topk_stream.wgsl with SEGS > 1, merged by topk_split.wgsl) and the
 * 32-element chunks (GROUPS = 8) against the float64 reference: odd V (scalar loads), V smaller
 * than segments × threads, segments past the end of the row (V < segments · 4), k = 1, k = V,
 * ties, -Inf, rows whose every chunk beats the threshold, row tiles; the log-probs, log-sum-exp
 * and sampled token of the fused outputs; NaN / +Inf / all -Inf / out-of-range flags.
 */
import assert from "node:assert/strict";
import { Rng } from "../src/util/rng.ts";
import { logSoftmax, topkIds } from "../src/obrs/reference/mod.ts";
import { type JackpotBatch, jackpotWeights, recordRowTopk } from "../src/obrs/gpu/mod.ts";
import { ComputeBatch, readBuffers } from "../src/gpu/mod.ts";
import {
  f64,
  gpu,
  logitMatrix,
  makeBatch,
  maxAbsDiff,
  type RowKind,
  run,
  upload,
  zeros,
} from "./obrs_gpu_util.ts";

const KINDS: RowKind[] = ["normal", "peaked", "flat", "ties", "neginf", "zipf", "ascending"];

interface Case {
  seed: number;
  rows: number;
  vocab: number;
  k: number;
  segments: number;
  groups?: 4 | 8;
  vec4?: boolean;
  maxBindingBytes?: number;
  uniformCount?: boolean;
}

/** Runs the pass with the lse and tokens; returns vals, ids and info. */
async function runTopk(x: Float32Array, tokens: Uint32Array, c: Case, withLse = true) {
  const { rows, vocab, k } = c;
  const xb = upload(x), tb = upload(tokens);
  const vals = zeros(rows * k * 4), ids = zeros(rows * k * 4), info = zeros(rows * 16);
  let temps: GPUBuffer[] = [];
  const [vb, ib, infob] = await run((b) => {
    temps = recordRowTopk(gpu, b, {
      logits: xb,
      rows,
      vocab,
      k,
      tokens: tb,
      vals,
      ids,
      info,
      withLse,
      method: "stream",
      segments: c.segments,
      groups: c.groups,
      vec4: c.vec4,
      maxBindingBytes: c.maxBindingBytes,
      uniformCount: c.uniformCount,
    });
  }, [vals, ids, info]);
  for (const b of [xb, tb, vals, ids, info, ...temps]) b.destroy();
  return {
    vals: new Float32Array(vb),
    ids: new Uint32Array(ib),
    info: new Float32Array(infob),
  };
}

/** Top-k ids exactly, log-probs, lse and sampled log-prob within f32 rounding. */
async function checkCase(c: Case): Promise<number> {
  const { rows, vocab, k } = c;
  const rng = new Rng(c.seed);
  const x = logitMatrix(rng, rows, vocab, KINDS);
  const tokens = Uint32Array.from({ length: rows }, () => rng.int(vocab));
  const got = await runTopk(x, tokens, c);
  const raw = await runTopk(x, tokens, c, false);
  const logp = logSoftmax(f64(x), vocab);
  const at = `seed ${c.seed} V ${vocab} k ${k} segments ${c.segments} groups ${c.groups ?? 4}`;
  let worst = 0;
  for (let r = 0; r < rows; r++) {
    const row = f64(x.subarray(r * vocab, (r + 1) * vocab));
    const lp = logp.subarray(r * vocab, (r + 1) * vocab);
    const want = Array.from(topkIds(row, k));
    const where = `${at} row ${r} (${KINDS[r % KINDS.length]})`;
    assert.deepEqual(Array.from(got.ids.subarray(r * k, (r + 1) * k)), want, `ids ${where}`);
    assert.deepEqual(Array.from(raw.ids.subarray(r * k, (r + 1) * k)), want, `raw ids ${where}`);
    for (let j = 0; j < k; j++) {
      // -0 and +0 share a key (they tie), so either zero may come back.
      assert.ok(raw.vals[r * k + j] === row[want[j]], `raw value ${where} j ${j}`);
    }
    // The kernel's lse is max + log Σ (info columns 0 and 3); the reference's is x − log p.
    const lse = got.info[r * 4] + got.info[r * 4 + 3];
    const lseWant = row[want[0]] - lp[want[0]];
    const errs = [
      maxAbsDiff(got.vals.subarray(r * k, (r + 1) * k), want.map((id) => lp[id])),
      Math.abs(got.info[r * 4 + 1] - lp[tokens[r]]),
      Math.abs(lse - lseWant) / Math.max(1, Math.abs(lseWant)),
    ];
    if (lp[tokens[r]] === -Infinity) {
      assert.equal(got.info[r * 4 + 1], -Infinity, where);
      errs[1] = 0;
    }
    assert.equal(got.info[r * 4 + 2], 0, `flags ${where}`);
    assert.equal(raw.info[r * 4 + 1], x[r * vocab + tokens[r]], `raw sampled ${where}`);
    assert.ok(Math.max(...errs) < 1e-4, `${where}: errors ${errs} (lse ${lse} vs ${lseWant})`);
    worst = Math.max(worst, ...errs);
  }
  return worst;
}

Deno.test("split-row top-k and lse match the reference (segments 2, 4, 8; odd V; short rows)", async () => {
  let worst = 0;
  const cases: Case[] = [
    { seed: 1, rows: 7, vocab: 1000, k: 20, segments: 2 },
    { seed: 2, rows: 7, vocab: 1001, k: 20, segments: 4 }, // odd V: scalar loads
    { seed: 3, rows: 7, vocab: 100, k: 5, segments: 8 }, // V < segments × threads
    { seed: 4, rows: 3, vocab: 5, k: 3, segments: 8 }, // segments past the row's end
    { seed: 5, rows: 7, vocab: 20, k: 20, segments: 4 }, // k = V: every segment short of k
    { seed: 6, rows: 7, vocab: 333, k: 1, segments: 4 }, // k = 1
    { seed: 7, rows: 7, vocab: 9000, k: 64, segments: 3 }, // several chunks per segment
    { seed: 8, rows: 9, vocab: 777, k: 20, segments: 4, maxBindingBytes: 777 * 4 * 9 }, // tiles
    { seed: 9, rows: 8, vocab: 776, k: 20, segments: 2, maxBindingBytes: 776 * 4 * 4 },
    { seed: 10, rows: 7, vocab: 1000, k: 20, segments: 4, vec4: false },
  ];
  for (const c of cases) worst = Math.max(worst, await checkCase(c));
  console.log(`split: max |error| of log-probs and lse ${worst.toExponential(2)}`);
});

Deno.test("32-element chunks (groups 8) and the one-load count, fused and split, match the reference", async () => {
  let worst = 0;
  const cases: Case[] = [
    { seed: 21, rows: 7, vocab: 20000, k: 20, segments: 1, groups: 8 }, // ascending row overflows
    { seed: 22, rows: 7, vocab: 20001, k: 64, segments: 1, groups: 8 },
    { seed: 23, rows: 7, vocab: 5000, k: 200, segments: 1, groups: 8 },
    { seed: 24, rows: 7, vocab: 8192, k: 20, segments: 4, groups: 8 },
    { seed: 25, rows: 6, vocab: 100, k: 100, segments: 1, groups: 8 }, // k = V
    { seed: 26, rows: 7, vocab: 1003, k: 1, segments: 2, groups: 8 },
    // The candidate count read by one workgroupUniformLoad of the atomic:
    { seed: 27, rows: 7, vocab: 20000, k: 20, segments: 1, uniformCount: true },
    { seed: 28, rows: 7, vocab: 5000, k: 200, segments: 2, groups: 8, uniformCount: true },
  ];
  for (const c of cases) worst = Math.max(worst, await checkCase(c));
  console.log(`groups 8: max |error| ${worst.toExponential(2)}`);
});

Deno.test("split-row pass flags NaN, +Inf, all -Inf rows and ids out of range like the fused one", async () => {
  const vocab = 300, rows = 7, k = 4;
  const x = logitMatrix(new Rng(41), rows, vocab, ["normal"]);
  x[1 * vocab + 17] = NaN;
  x[2 * vocab + 299] = Infinity;
  x.fill(-Infinity, 3 * vocab, 4 * vocab);
  x[5 * vocab + 3] = -Infinity; // allowed: a masked token
  x.fill(-Infinity, 6 * vocab, 6 * vocab + 200); // whole segments -Inf, the row is not
  const tokens = new Uint32Array([0, 1, 2, 3, vocab + 5, 3, 250]);
  for (const segments of [1, 2, 4, 8]) {
    const got = await runTopk(x, tokens, { seed: 0, rows, vocab, k, segments });
    const flags = Array.from({ length: rows }, (_, r) => got.info[r * 4 + 2]);
    assert.deepEqual(flags, [0, 1, 1, 2, 4, 0, 0], `segments ${segments}`);
    assert.equal(got.info[5 * 4 + 1], -Infinity, `segments ${segments}`);
    assert.ok(Number.isFinite(got.info[6 * 4 + 1]), `segments ${segments}`);
  }
});

Deno.test("split-row options are checked", () => {
  const xb = upload(new Float32Array(40)), out = zeros(64), info = zeros(64);
  const args = { logits: xb, rows: 1, vocab: 40, vals: out, ids: zeros(64), info };
  const rec = (extra: Record<string, unknown>) => () =>
    recordRowTopk(gpu, new ComputeBatch(gpu), { ...args, k: 4, ...extra });
  assert.throws(rec({ segments: 0 }), /segments must be an integer >= 1, got 0/);
  assert.throws(rec({ segments: 1.5 }), /segments must be an integer >= 1, got 1.5/);
  assert.throws(rec({ segments: 600, k: 4 }), /segments · k must be <= 2048, got 600 · 4/);
  assert.throws(rec({ groups: 5 }), /groups must be 4 or 8, got 5/);
  for (const b of [xb, out, info, args.ids]) b.destroy();
});

Deno.test("jackpotWeights with split rows or 32-element chunks = the fused pass (to rounding)", async () => {
  const b = makeBatch(51, 24, 602);
  const m = (x: Float32Array) => ({ data: x, shape: [b.rows, b.vocab] as const });
  const batch: JackpotBatch = {
    tokens: b.tokens,
    inf: { logits: m(b.inf) },
    newLogits: m(b.nw),
    ref: { logits: m(b.ref) },
  };
  const results: { mask: Uint32Array; rho: Float32Array; kappa: number }[] = [];
  for (
    const extra of [{}, { topkSegments: 4 }, { topkGroups: 8 as const }, {
      topkSegments: 8,
      topkGroups: 8 as const,
    }]
  ) {
    const r = await jackpotWeights(gpu, batch, { seed: 5, lambda: 1.5, k: 20, ...extra });
    const [mb, rb] = await readBuffers(gpu, [{ buffer: r.mask }, { buffer: r.rho }]);
    results.push({
      mask: new Uint32Array(mb, 0, b.rows),
      rho: new Float32Array(rb, 0, b.rows),
      kappa: r.stats.kappa,
    });
    r.destroy();
  }
  for (const [i, got] of results.entries()) {
    // The row sums are added in another order: the lse, and so ρ and κ, move by ulps.
    assert.deepEqual(got.mask, results[0].mask, `variant ${i}`);
    got.rho.forEach((v, r) =>
      assert.ok(Math.abs(v - results[0].rho[r]) <= 1e-5 * results[0].rho[r], `variant ${i} ρ ${r}`)
    );
    assert.ok(Math.abs(got.kappa - results[0].kappa) <= 1e-5 * results[0].kappa, `κ ${i}`);
  }
  await assert.rejects(
    () => jackpotWeights(gpu, batch, { seed: 5, k: 20, topkSegments: 0 }),
    /segments must be an integer >= 1, got 0/,
  );
});
