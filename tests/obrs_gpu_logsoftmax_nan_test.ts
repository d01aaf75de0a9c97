// A NaN logit must reach the row's log-sum-exp (and so every log-prob of that row): a kernel whose
// NaN test the shader compiler folds away (`v != v`) would let max() drop it and return finite,
// wrong values for a row the caller should have been warned about.
import assert from "node:assert/strict";
import { recordLogSoftmax } from "../src/obrs/gpu/mod.ts";
import { ComputeBatch, readBuffers, uploadBuffer } from "../src/gpu/mod.ts";
import { gpu } from "./obrs_gpu_util.ts";

Deno.test("log-softmax: a NaN anywhere in a row makes that row's log-sum-exp NaN, not others'", async () => {
  const rows = 3, vocab = 300;
  const x = Float32Array.from({ length: rows * vocab }, (_, i) => Math.sin(i) * 3);
  for (const col of [0, 137, vocab - 1]) {
    const data = x.slice();
    data[1 * vocab + col] = NaN; // row 1 only
    const xb = uploadBuffer(gpu, data, "x");
    const lse = uploadBuffer(gpu, new Float32Array(rows), "lse");
    const out = uploadBuffer(gpu, new Float32Array(rows * vocab), "out");
    const batch = new ComputeBatch(gpu);
    recordLogSoftmax(gpu, batch, { x: xb, rows, vocab, lse, out });
    batch.submit();
    const [l, o] = await readBuffers(gpu, [{ buffer: lse }, { buffer: out }]);
    const lseValues = new Float32Array(l);
    const logp = new Float32Array(o);
    assert.ok(Number.isNaN(lseValues[1]), `NaN at column ${col}: lse ${lseValues[1]}`);
    assert.ok(Number.isFinite(lseValues[0]) && Number.isFinite(lseValues[2]));
    assert.ok(logp.subarray(vocab, 2 * vocab).every(Number.isNaN));
    assert.ok(logp.subarray(0, vocab).every(Number.isFinite));
    for (const b of [xb, lse, out]) b.destroy();
  }
});
