import assert from "node:assert/strict";
import { passAtK, scoreSamples } from "../src/tasks/mod.ts";
import { Rng } from "../src/util/rng.ts";

/** Reference: enumerate every k-subset of n samples (c correct) and count those with a hit. */
function passAtKBrute(n: number, c: number, k: number): number {
  let hit = 0;
  let total = 0;
  for (let mask = 0; mask < 1 << n; mask++) {
    let bits = 0;
    let anyCorrect = false;
    for (let i = 0; i < n; i++) {
      if (mask & (1 << i)) {
        bits++;
        if (i < c) anyCorrect = true;
      }
    }
    if (bits !== k) continue;
    total++;
    if (anyCorrect) hit++;
  }
  return hit / total;
}

Deno.test("passAtK matches enumeration of every k-subset", () => {
  for (let n = 1; n <= 12; n++) {
    for (let c = 0; c <= n; c++) {
      for (let k = 1; k <= n; k++) {
        assert.ok(Math.abs(passAtK(n, c, k) - passAtKBrute(n, c, k)) < 1e-12, `${n} ${c} ${k}`);
      }
    }
  }
  assert.ok(Number.isFinite(passAtK(100000, 3, 1000)) && passAtK(100000, 3, 1000) < 0.03);
  assert.throws(() => passAtK(4, 5, 1), /0 <= c <= n/);
  assert.throws(() => passAtK(4, 1, 0), /1 <= k <= n/);
  assert.throws(() => passAtK(4, 1.5, 1), /integers/);
});

Deno.test("scoreSamples averages Pass@k over prompts and rewards over samples", () => {
  const rng = new Rng(1);
  const rewards = Array.from(
    { length: 9 },
    () => Float64Array.from({ length: 8 }, () => rng.int(2)),
  );
  const k = 3;
  const s = scoreSamples(rewards, k);
  let pass = 0;
  let sum = 0;
  for (const r of rewards) {
    pass += passAtKBrute(8, r.filter((x) => x === 1).length, k);
    sum += r.reduce((a, x) => a + x, 0);
  }
  assert.ok(Math.abs(s.passAtK - pass / 9) < 1e-12);
  assert.ok(Math.abs(s.meanAtK - sum / 72) < 1e-12);
  assert.throws(() => scoreSamples([[1, 0]], 3), /prompt 0 has 2 samples, fewer than k=3/);
  assert.throws(() => scoreSamples([[1, NaN]], 1), /reward 1 of prompt 0 is NaN/);
  assert.throws(() => scoreSamples([], 1), /at least one prompt/);
});
