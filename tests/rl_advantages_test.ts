// GRPO advantages (src/rl/advantages.ts) against a direct float64 restatement of the definition,
// on binary and continuous rewards from many seeds, groups of 1, 2 and more, all-equal groups
// (including values whose mean does not round back, such as 0.1), both kinds of std, with and
// without the std; their group-wise properties; the per-token broadcast and its upload.
import assert from "node:assert/strict";
import {
  advantagesTensor,
  broadcastAdvantages,
  grpoAdvantages,
  type GrpoOptions,
} from "../src/rl/advantages.ts";
import { read } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertNoGpuErrors, setup } from "./autograd_util.ts";

// The definition, one group at a time, written independently of the module (reduce, not loops).
function reference(r: number[], n: number, o: GrpoOptions): number[] {
  const out: number[] = [];
  for (let g = 0; g < r.length / n; g++) {
    const x = r.slice(g * n, (g + 1) * n);
    const mean = x.reduce((a, b) => a + b, 0) / n;
    const dev = x.map((v) => v - mean);
    const sq = dev.reduce((a, d) => a + d * d, 0);
    const std = n === 1 ? 0 : Math.sqrt(sq / ((o.std ?? "sample") === "sample" ? n - 1 : n));
    const flat = x.every((v) => v === x[0]);
    const div = (o.normalizeStd ?? true) ? std + (o.eps ?? 1e-6) : 1;
    out.push(...dev.map((d) => (flat ? 0 : d / div)));
  }
  return out;
}

function rewards(rng: Rng, P: number, n: number): number[] {
  const kind = rng.int(3);
  return Array.from({ length: P * n }, (_, i) => {
    const g = Math.floor(i / n);
    if (g % 4 === 1) return 0.1; // all equal, and 0.1·n / n may not round back to 0.1
    if (g % 4 === 3) return 1; // all equal
    if (kind === 0) return rng.uniform() < 0.4 ? 1 : 0; // verifiable rewards
    if (kind === 1) return rng.normal() * 3 + 100; // far from 0
    return Math.round(rng.normal() * 2) / 2; // ties
  });
}

Deno.test("grpoAdvantages matches the definition (many seeds, both stds, with and without std)", () => {
  let worst = 0, flat = 0;
  for (let seed = 0; seed < 60; seed++) {
    const rng = new Rng(seed);
    const n = [1, 2, 3, 4, 8, 16][seed % 6];
    const P = 1 + rng.int(9);
    const r = rewards(rng, P, n);
    for (
      const o of [
        {},
        { std: "population" },
        { normalizeStd: false },
        { eps: 0.5, std: "sample" },
      ] as GrpoOptions[]
    ) {
      const got = grpoAdvantages(r, n, o);
      const want = reference(r, n, o);
      got.advantages.forEach((a, i) => {
        const err = Math.abs(a - want[i]) / (1e-12 + 1e-12 * Math.abs(want[i]));
        worst = Math.max(worst, err);
        assert.ok(
          err <= 1e3,
          `seed ${seed} n=${n} ${JSON.stringify(o)}: [${i}] ${a} vs ${want[i]}`,
        );
      });
      for (let g = 0; g < P; g++) {
        const a = Array.from(got.advantages.slice(g * n, (g + 1) * n));
        const x = r.slice(g * n, (g + 1) * n);
        if (x.every((v) => v === x[0])) {
          assert.ok(a.every((v) => v === 0), `flat group ${g} has non-zero advantages ${a}`);
          continue;
        }
        // centred; with the population std and ε = 0 the mean square would be 1
        assert.ok(Math.abs(a.reduce((s, v) => s + v, 0)) < 1e-9 * n * (1 + Math.max(...a)));
        if (o.std === "population" && n > 1) {
          const ms = a.reduce((s, v) => s + v * v, 0) / n;
          assert.ok(Math.abs(ms - 1) < 1e-4, `population-normalised mean square ${ms}`);
        }
      }
      flat += got.flatGroups;
    }
  }
  assert.ok(flat > 0);
  console.log(
    `grpoAdvantages vs definition: worst error ${worst.toFixed(3)} × (1e-12 + 1e-12·|a|), ` +
      `${flat} flat groups (groups of one included)`,
  );
});

Deno.test("grpoAdvantages: worked values and group statistics", () => {
  const r = [1, 0, 0, 1, 1, 1];
  const pop = grpoAdvantages(r, 3, { std: "population", eps: 0 });
  const s = Math.sqrt(2) / 3; // population std of {1, 0, 0}
  assert.deepEqual(Array.from(pop.mean), [1 / 3, 1]);
  assert.ok(Math.abs(pop.std[0] - s) < 1e-15 && pop.std[1] === 0);
  assert.ok(Math.abs(pop.advantages[0] - (2 / 3) / s) < 1e-12);
  assert.equal(pop.flatGroups, 1);
  const samp = grpoAdvantages([0, 1], 2, { eps: 0 });
  assert.ok(Math.abs(samp.advantages[1] - 0.5 / Math.SQRT1_2) < 1e-12); // sample std of {0, 1}
  assert.deepEqual(Array.from(grpoAdvantages([5], 1).advantages), [0]);
});

Deno.test("grpoAdvantages refuses bad input with a message naming it", () => {
  assert.throws(() => grpoAdvantages([1, 2, 3], 2), /3 rewards are not whole groups of 2/);
  assert.throws(() => grpoAdvantages([1, NaN], 2), /reward NaN at index 1 \(prompt 0, sample 1\)/);
  assert.throws(() => grpoAdvantages([1, 2], 0), /groupSize 0/);
  assert.throws(() => grpoAdvantages([1, 2], 2, { eps: -1 }), /eps -1/);
  assert.throws(
    () => grpoAdvantages([1, 2], 2, { std: "biased" as "sample" }),
    /std "biased"/,
  );
  assert.throws(() => broadcastAdvantages([1], 4, { start: [3], end: [2] }), /row 0 span \[3, 2\)/);
  assert.throws(() => broadcastAdvantages([1, 2], 4, { end: [2] }), /end has 1 values for 2 rows/);
  assert.throws(() => broadcastAdvantages([Infinity], 4), /advantage Infinity of row 0/);
});

Deno.test("advantagesTensor: each row's advantage over its span, 0 elsewhere, on the GPU", async () => {
  await setup();
  const rng = new Rng(5);
  for (const [B, T] of [[1, 1], [3, 7], [6, 33]]) {
    const adv = Array.from({ length: B }, () => rng.normal());
    const start = Array.from({ length: B }, () => rng.int(T + 1));
    const end = start.map((s) => s + rng.int(T - s + 1));
    const t = advantagesTensor(adv, T, { start, end });
    const got = await read(t);
    t.dispose();
    assertNoGpuErrors();
    assert.deepEqual(t.shape, [B, T]);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < T; i++) {
        const want = i >= start[b] && i < end[b] ? Math.fround(adv[b]) : 0;
        assert.equal(got[b * T + i], want, `[${b}, ${i}]`);
      }
    }
    const all = broadcastAdvantages(adv, T);
    assert.ok(all.every((v, i) => v === Math.fround(adv[Math.floor(i / T)])));
  }
});
