/**
 * Tests of top-k selection, the union V_k and Z_approx (SPEC §3) against brute force.
 */
import assert from "node:assert/strict";
import { Rng } from "../src/util/rng.ts";
import { exactZ, topkIds, topkUnion, zApprox } from "../src/obrs/reference/mod.ts";
import { pairs, relErr } from "./obrs_reference_helpers.ts";

/** Brute force: repeatedly pick the best remaining entry by (value desc, id asc). */
function bruteTopk(x: Float64Array, k: number): number[] {
  const taken = new Set<number>();
  const out: number[] = [];
  for (let r = 0; r < k; r++) {
    let best = -1;
    for (let i = 0; i < x.length; i++) {
      if (taken.has(i)) continue;
      if (best < 0 || x[i] > x[best]) best = i; // strict >: the first (lowest) id wins a tie
    }
    taken.add(best);
    out.push(best);
  }
  return out;
}

Deno.test("topkIds matches brute force on ties, -Infinity, probabilities and log-probabilities", () => {
  const rng = new Rng(81);
  let cases = 0;
  for (let trial = 0; trial < 2000; trial++) {
    const vocab = 1 + rng.int(60);
    const style = trial % 4;
    const x = new Float64Array(vocab).map(() => {
      if (style === 0) return rng.uniform(); // distinct probabilities
      if (style === 1) return rng.int(4) / 4; // many ties, zeros
      if (style === 2) return rng.uniform() < 0.4 ? -Infinity : Math.round(rng.normal() * 2); // log-probs
      return -Infinity; // all -Infinity: still a valid order by id
    });
    const k = 1 + rng.int(vocab);
    assert.deepEqual(Array.from(topkIds(x, k)), bruteTopk(x, k), `trial ${trial}`);
    cases++;
  }
  console.log(`topkIds: ${cases} random cases equal brute force`);
  assert.throws(() => topkIds(new Float64Array(3), 0), /k must be an integer in \[1, V = 3\]/);
  assert.throws(() => topkIds(new Float64Array(3), 4), /k must be/);
  assert.throws(() => topkIds(new Float64Array(3), 1.5), /k must be/);
  assert.throws(() => topkIds(new Float64Array([0, NaN]), 1), /NaN/);
});

Deno.test("topkUnion: de-duplicated, between k and 2k ids, exactly both top-k sets", () => {
  const rng = new Rng(82);
  for (const { p, q } of pairs(83, 20)) {
    const k = 1 + rng.int(Math.min(p.length, 30));
    const u = Array.from(topkUnion(q, p, k));
    const expected = new Set([...bruteTopk(q, k), ...bruteTopk(p, k)]);
    assert.equal(new Set(u).size, u.length, "duplicates");
    assert.ok(u.length >= k && u.length <= 2 * k);
    assert.deepEqual(new Set(u), expected);
    assert.deepEqual(u.slice(0, k), bruteTopk(q, k), "pInf's top-k comes first");
  }
  assert.throws(() => topkUnion(new Float64Array(2), new Float64Array(3), 1), /length mismatch/);
});

Deno.test("Z_approx ≤ Z, equals Z at k = V, equals the brute-force sum, non-decreasing in k", () => {
  const rng = new Rng(84);
  let worstOver = -Infinity;
  let maxErr = 0;
  for (const { p, q } of pairs(85, 40)) {
    const pNew = rng.uniform() < 0.5 ? p : q.map((v, i) => 0.5 * v + 0.5 * p[i]);
    const lambda = Math.exp(rng.normal());
    const z = exactZ(p, q, lambda);
    let prev = 0;
    for (const k of [1, 2, 5, 20, p.length].filter((k) => k <= p.length)) {
      const za = zApprox(p, q, pNew, lambda, k);
      worstOver = Math.max(worstOver, za - z);
      assert.ok(za >= prev - 1e-15, "Z_approx must grow with k");
      prev = za;
      let brute = 0;
      for (const v of new Set([...bruteTopk(q, k), ...bruteTopk(pNew, k)])) {
        brute += Math.min(q[v], p[v] / lambda);
      }
      maxErr = Math.max(maxErr, relErr(za, brute));
      if (k === p.length) maxErr = Math.max(maxErr, relErr(za, z));
    }
  }
  console.log(
    `Z_approx: max(Z_approx - Z) = ${worstOver.toExponential(2)}, ` +
      `max rel error vs brute force / Z at k = V = ${maxErr.toExponential(2)}`,
  );
  assert.ok(worstOver <= 1e-15 && maxErr < 1e-12);
  const p = new Float64Array([0.5, 0.5]);
  assert.throws(() => zApprox(p, p, p, 1, 3), /k must be/);
  assert.throws(() => zApprox(p, p, p, 0, 1), /lambda/);
  assert.throws(() => zApprox(p, p, new Float64Array([1]), 1, 1), /length mismatch/);
});
