/**
 * The vectorised row log-sum-exp (kernels/logsoftmax.wgsl `lse`) against the float64 reference:
 * odd V (rows starting at every 16-byte phase: scalar head, vec4 body, scalar tail), rows shorter
 * than a vec4, every LOADS, vec4 and scalar bodies (identical bits), row tiles, and the
 * non-finite rules (-Inf skipped, all -Inf → -Inf, NaN → NaN, else +Inf → +Inf).
 */
import assert from "node:assert/strict";
import { Rng } from "../src/util/rng.ts";
import { recordLogSoftmax } from "../src/obrs/gpu/mod.ts";
import { ComputeBatch } from "../src/gpu/mod.ts";
import { gpu, logitMatrix, type RowKind, run, upload, zeros } from "./obrs_gpu_util.ts";

const KINDS: RowKind[] = ["normal", "peaked", "flat", "ties", "neginf", "zipf", "ascending"];

/** float64 log Σ exp over one row, with the kernel's non-finite rules. */
function refLse(row: Float32Array): number {
  if (row.some(Number.isNaN)) return NaN;
  if (row.some((v) => v === Infinity)) return Infinity;
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  return m + Math.log(s);
}

async function lseOf(
  x: Float32Array,
  rows: number,
  vocab: number,
  opts: { loads?: 1 | 2 | 4 | 8; vec4?: boolean; maxBindingBytes?: number } = {},
): Promise<Float32Array> {
  const xb = upload(x), lse = zeros(rows * 4);
  const [lb] = await run((b) => recordLogSoftmax(gpu, b, { x: xb, rows, vocab, lse, ...opts }), [
    lse,
  ]);
  xb.destroy();
  lse.destroy();
  return new Float32Array(lb, 0, rows);
}

function check(got: Float32Array, x: Float32Array, vocab: number, at: string): number {
  let worst = 0;
  for (let r = 0; r < got.length; r++) {
    const want = refLse(x.subarray(r * vocab, (r + 1) * vocab));
    if (!Number.isFinite(want)) {
      assert.ok(Object.is(got[r], want), `${at} row ${r}: got ${got[r]}, want ${want}`);
      continue;
    }
    const err = Math.abs(got[r] - want);
    worst = Math.max(worst, err);
    assert.ok(err <= 4e-6 * Math.max(1, Math.abs(want)), `${at} row ${r}: ${got[r]} vs ${want}`);
  }
  return worst;
}

Deno.test("lse: odd and even V, every LOADS, vec4 and scalar bodies give the same bits", async () => {
  let worst = 0;
  for (
    const [seed, rows, vocab] of [
      [1, 9, 1],
      [2, 9, 2],
      [3, 9, 3],
      [4, 9, 5],
      [5, 7, 1001], // rows start at every phase mod 4
      [6, 11, 4099],
      [7, 7, 4096],
      [8, 3, 9000], // several LOADS steps per thread at LOADS = 1
    ] as const
  ) {
    const x = logitMatrix(new Rng(seed), rows, vocab, KINDS);
    let first: Float32Array | undefined;
    for (const loads of [1, 2, 4, 8] as const) {
      for (const vec4 of [true, false]) {
        const got = await lseOf(x, rows, vocab, { loads, vec4 });
        worst = Math.max(worst, check(got, x, vocab, `V ${vocab} loads ${loads} vec4 ${vec4}`));
        if (vec4 === false) {
          // Same elements, same order: the scalar body must agree bit for bit with the vec4 one.
          assert.deepEqual(Array.from(got), Array.from(first!), `V ${vocab} loads ${loads}`);
        }
        first = got;
      }
    }
  }
  console.log(`lse: max |error| ${worst.toExponential(2)}`);
});

Deno.test("lse: row tiles (unaligned rows inside a tile) match one binding", async () => {
  const rows = 19, vocab = 777;
  const x = logitMatrix(new Rng(9), rows, vocab, KINDS);
  const whole = await lseOf(x, rows, vocab);
  check(whole, x, vocab, "untiled");
  const tiled = await lseOf(x, rows, vocab, { maxBindingBytes: vocab * 4 * 9 }); // 8-row tiles
  assert.deepEqual(Array.from(tiled), Array.from(whole));
});

Deno.test("lse: -Inf skipped, all -Inf row → -Inf, NaN → NaN, +Inf → +Inf, rows independent", async () => {
  const vocab = 1003, rows = 8;
  const x = logitMatrix(new Rng(10), rows, vocab, ["normal"]);
  x.fill(-Infinity, 1 * vocab, 2 * vocab); // all -Inf
  x[2 * vocab + 0] = NaN; // head of an unaligned row? row 2 starts at 2006: head 2 elements
  x[3 * vocab + 500] = NaN; // body
  x[4 * vocab + vocab - 1] = NaN; // tail
  x[5 * vocab + 7] = Infinity;
  x[5 * vocab + 900] = Infinity; // two +Inf: still +Inf, not NaN
  x[6 * vocab + 3] = Infinity;
  x[6 * vocab + 4] = NaN; // NaN wins over +Inf
  for (let i = 7 * vocab; i < 8 * vocab - 1; i++) x[i] = -Infinity; // one finite entry, last
  for (const loads of [1, 4, 8] as const) {
    for (const vec4 of [true, false]) {
      const got = await lseOf(x, rows, vocab, { loads, vec4 });
      const want = [undefined, -Infinity, NaN, NaN, NaN, Infinity, NaN, x[8 * vocab - 1]];
      check(got, x, vocab, `non-finite loads ${loads} vec4 ${vec4}`);
      for (let r = 1; r < rows; r++) assert.ok(Object.is(got[r], want[r]), `row ${r}: ${got[r]}`);
    }
  }
});

Deno.test("lse: bad options are refused", () => {
  const xb = upload(new Float32Array(4)), lse = zeros(4);
  assert.throws(
    // @ts-expect-error: 3 is not a valid LOADS
    () => recordLogSoftmax(gpu, new ComputeBatch(gpu), { x: xb, rows: 1, vocab: 4, lse, loads: 3 }),
    /loads must be 1, 2, 4 or 8, got 3/,
  );
  xb.destroy();
  lse.destroy();
});
