/**
 * Each OBRS GPU kernel against the float64 reference on random inputs: the RNG bit for bit,
 * log-softmax, top-k (stream and sort paths; ties, -Inf, k = 1 and k = V), and the gather.
 */
import assert from "node:assert/strict";
import { hash3, Rng, uniformAt } from "../src/util/rng.ts";
import { logSoftmax, topkIds } from "../src/obrs/reference/mod.ts";
import { recordGather, recordLogSoftmax, recordRowTopk } from "../src/obrs/gpu/mod.ts";
import { rngCheckKernel } from "../src/obrs/gpu/kernels.ts";
import {
  f64,
  gpu,
  logitMatrix,
  maxAbsDiff,
  type RowKind,
  run,
  upload,
  zeros,
} from "./obrs_gpu_util.ts";

const KINDS: RowKind[] = ["normal", "peaked", "flat", "ties", "neginf", "zipf", "ascending"];

Deno.test("rng.wgsl reproduces hash3 and uniformAt bit for bit", async () => {
  const count = 4099;
  let checked = 0;
  for (const seed of [0, 1, 7, 0x7fffffff, 0xdeadbeef, 0xffffffff]) {
    for (const stream of [0, 3, 0xfffffff0]) {
      const h = zeros(count * 4), u = zeros(count * 4);
      const [hb, ub] = await run((b) =>
        b.dispatch({
          kernel: rngCheckKernel,
          bindings: [h, u, new Uint32Array([seed, stream, count])],
          workgroups: [Math.ceil(count / 64)],
        }), [h, u]);
      const hashes = new Uint32Array(hb), uniforms = new Float32Array(ub);
      for (let i = 0; i < count; i++) {
        const s = (stream + Math.floor(i / 7)) >>> 0;
        assert.equal(hashes[i], hash3(seed, s, i), `hash3(${seed}, ${s}, ${i})`);
        assert.equal(uniforms[i], uniformAt(seed, s, i), `uniformAt(${seed}, ${s}, ${i})`);
        checked++;
      }
      h.destroy();
      u.destroy();
    }
  }
  console.log(`rng: ${checked} values identical`);
});

Deno.test("log-softmax matches the float64 reference (tiled and untiled)", async () => {
  let worst = 0;
  for (
    const [seed, rows, vocab, maxBindingBytes] of [
      [1, 1, 1, undefined],
      [2, 7, 1000, undefined],
      [3, 13, 257, 257 * 4 * 9], // forces tiles of 8 rows (offsets aligned)
      [4, 6, 5003, undefined],
    ] as const
  ) {
    const rng = new Rng(seed);
    const x = logitMatrix(rng, rows, vocab, KINDS);
    const xb = upload(x), lse = zeros(rows * 4), out = zeros(rows * vocab * 4);
    const [, ob] = await run(
      (b) => recordLogSoftmax(gpu, b, { x: xb, rows, vocab, lse, out, maxBindingBytes }),
      [lse, out],
    );
    const got = new Float32Array(ob, 0, rows * vocab);
    const want = logSoftmax(f64(x), vocab);
    const err = maxAbsDiff(got, want);
    worst = Math.max(worst, err);
    assert.ok(err < 2e-5 * Math.max(1, Math.log(vocab)) * 10, `rows ${rows} V ${vocab}: ${err}`);
    for (const b of [xb, lse, out]) b.destroy();
  }
  console.log(`log-softmax: max |error| ${worst.toExponential(2)}`);
});

async function checkTopk(
  seed: number,
  rows: number,
  vocab: number,
  k: number,
  method: "stream" | "sort",
  maxBindingBytes?: number,
  vec4?: boolean,
  prefetch?: boolean,
) {
  const rng = new Rng(seed);
  const x = logitMatrix(rng, rows, vocab, KINDS);
  const xb = upload(x), vals = zeros(rows * k * 4), ids = zeros(rows * k * 4);
  const info = zeros(rows * 16);
  let temps: GPUBuffer[] = [];
  const [vb, ib] = await run((b) => {
    temps = recordRowTopk(gpu, b, {
      logits: xb,
      rows,
      vocab,
      k,
      vals,
      ids,
      info,
      withLse: false,
      method,
      maxBindingBytes,
      vec4,
      prefetch,
    });
  }, [vals, ids]);
  const gotVals = new Float32Array(vb), gotIds = new Uint32Array(ib);
  for (let r = 0; r < rows; r++) {
    const row = f64(x.subarray(r * vocab, (r + 1) * vocab));
    const want = topkIds(row, k);
    for (let j = 0; j < k; j++) {
      const at = `seed ${seed} ${method} row ${r} (${KINDS[r % KINDS.length]}) j ${j}`;
      assert.equal(gotIds[r * k + j], want[j], `id ${at}`);
      // -0 and +0 share a key (they tie), so the kernel may return either zero.
      assert.ok(gotVals[r * k + j] === row[want[j]], `value ${at}: ${gotVals[r * k + j]}`);
    }
  }
  for (const b of [xb, vals, ids, info, ...temps]) b.destroy();
}

Deno.test("top-k (stream) equals the reference exactly: ties to lower id, -Inf last", async () => {
  await checkTopk(11, 1, 1, 1, "stream");
  await checkTopk(12, 12, 1000, 1, "stream");
  await checkTopk(13, 12, 1000, 20, "stream");
  await checkTopk(14, 12, 3001, 64, "stream");
  await checkTopk(15, 6, 100, 100, "stream"); // k = V
  await checkTopk(16, 19, 777, 20, "stream", 777 * 4 * 9); // tiles of 8 rows
  await checkTopk(17, 6, 5000, 200, "stream");
  // V % 4 == 0 reads vec4 by default; the scalar path on the same shapes:
  await checkTopk(13, 12, 1000, 20, "stream", undefined, false);
  await checkTopk(17, 6, 5000, 200, "stream", undefined, false);
  await checkTopk(16, 19, 776, 20, "stream", 776 * 4 * 9); // vec4 with tiles
  // Several 4,096-element chunks: the ascending row's later chunks pass the threshold whole and
  // overflow the 1,024-entry candidate buffer (compact and insert again), at the largest k too.
  await checkTopk(18, 7, 20000, 256, "stream");
  await checkTopk(19, 7, 20001, 20, "stream");
  await checkTopk(20, 7, 16388, 1, "stream", undefined, false);
  // With the next chunk's loads issued early (the `prefetch` option):
  await checkTopk(18, 7, 20000, 256, "stream", undefined, undefined, true);
  await checkTopk(19, 7, 20001, 20, "stream", undefined, false, true);
});

Deno.test("top-k (sort, any k) equals the reference exactly", async () => {
  await checkTopk(21, 6, 300, 300, "sort"); // k = V
  await checkTopk(22, 7, 1000, 20, "sort");
  await checkTopk(23, 5, 1, 1, "sort");
  await checkTopk(24, 9, 513, 400, "sort", 513 * 4 * 8);
});

Deno.test("fused row pass: log-probs of the top-k, lse, sampled token, gather", async () => {
  let worst = 0;
  for (const [seed, rows, vocab, k] of [[31, 12, 1000, 20], [32, 1, 17, 17], [33, 9, 4099, 5]]) {
    const rng = new Rng(seed);
    const x = logitMatrix(rng, rows, vocab, KINDS);
    const tokens = Uint32Array.from({ length: rows }, () => rng.int(vocab));
    const xb = upload(x), tb = upload(tokens);
    const vals = zeros(rows * k * 4), ids = zeros(rows * k * 4), info = zeros(rows * 16);
    const gathered = zeros(rows * k * 4);
    const [vb, ib, infob, gb] = await run((b) => {
      recordRowTopk(gpu, b, { logits: xb, rows, vocab, k, tokens: tb, vals, ids, info });
      recordGather(gpu, b, { logits: xb, rows, vocab, ids, kk: k, info, out: gathered });
    }, [vals, ids, info, gathered]);
    const gotVals = new Float32Array(vb), gotIds = new Uint32Array(ib);
    const gotInfo = new Float32Array(infob), gotGath = new Float32Array(gb);
    const logp = logSoftmax(f64(x), vocab);
    for (let r = 0; r < rows; r++) {
      const row = logp.subarray(r * vocab, (r + 1) * vocab);
      const want = topkIds(f64(x.subarray(r * vocab, (r + 1) * vocab)), k);
      assert.deepEqual(Array.from(gotIds.subarray(r * k, (r + 1) * k)), Array.from(want));
      const wantVals = Array.from(want, (id) => row[id]);
      const errs = [
        maxAbsDiff(gotVals.subarray(r * k, (r + 1) * k), wantVals),
        maxAbsDiff(gotGath.subarray(r * k, (r + 1) * k), wantVals),
        Math.abs(gotInfo[r * 4 + 1] - row[tokens[r]]),
      ];
      if (row[tokens[r]] === -Infinity) assert.equal(gotInfo[r * 4 + 1], -Infinity);
      else worst = Math.max(worst, ...errs);
      assert.equal(gotInfo[r * 4 + 2], 0, `row ${r} flagged`);
      assert.ok(Math.max(...errs.filter(Number.isFinite)) < 1e-4, `row ${r}: ${errs}`);
    }
    for (const b of [xb, tb, vals, ids, info, gathered]) b.destroy();
  }
  console.log(`fused row pass: max |error| of log-probs ${worst.toExponential(2)}`);
});

Deno.test("fused row pass flags NaN, +Inf, all -Inf rows and ids out of range", async () => {
  const vocab = 300, rows = 6, k = 4;
  const x = logitMatrix(new Rng(41), rows, vocab, ["normal"]);
  x[1 * vocab + 17] = NaN;
  x[2 * vocab + 299] = Infinity;
  x.fill(-Infinity, 3 * vocab, 4 * vocab);
  x[5 * vocab + 3] = -Infinity; // allowed: a masked token
  const tokens = new Uint32Array([0, 1, 2, 3, vocab + 5, 3]);
  const xb = upload(x), tb = upload(tokens);
  const vals = zeros(rows * k * 4), ids = zeros(rows * k * 4), info = zeros(rows * 16);
  const [infob] = await run(
    (b) => recordRowTopk(gpu, b, { logits: xb, rows, vocab, k, tokens: tb, vals, ids, info }),
    [info],
  );
  const got = new Float32Array(infob);
  const flags = Array.from({ length: rows }, (_, r) => got[r * 4 + 2]);
  assert.deepEqual(flags, [0, 1, 1, 2, 4, 0]);
  assert.equal(got[5 * 4 + 1], -Infinity);
  for (const b of [xb, tb, vals, ids, info]) b.destroy();
});
