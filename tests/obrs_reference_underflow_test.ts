// Probabilities near the bottom of float64 must not turn into zeros inside OBRS: p_v / λ used to
// underflow to 0, so P_OBRS had a zero where p has mass and KL(p‖P_OBRS) came out infinite.
import assert from "node:assert/strict";
import { exactZ, klDivergence, obrsDistribution, Rng, zApprox } from "../mod.ts";

// P_OBRS in log space (no underflow anywhere): log m_v = min(log q_v, log p_v − log λ), normalised.
function obrsLogSpace(p: Float64Array, q: Float64Array, lambda: number): Float64Array {
  const logM = Array.from(p, (pv, v) => Math.min(Math.log(q[v]), Math.log(pv) - Math.log(lambda)));
  const max = Math.max(...logM);
  const lse = max + Math.log(logM.reduce((s, x) => s + Math.exp(x - max), 0));
  return Float64Array.from(logM, (x) => Math.exp(x - lse));
}

Deno.test("p = q with a subnormal entry and λ = 4: P_OBRS = p and KL = 0", () => {
  const p = new Float64Array([5e-324, 0.5, 0.5]);
  assert.equal(klDivergence(p, obrsDistribution(p, p, 4)), 0);
  assert.deepEqual([...obrsDistribution(p, p, 4)], [...p]);
  assert.equal(exactZ(p, p, 4), 0.25);
});

Deno.test("tiny probabilities: P_OBRS matches a log-space computation and KL stays finite", () => {
  const rng = new Rng(11);
  let worst = 0;
  for (let trial = 0; trial < 200; trial++) {
    const V = 2 + rng.int(40);
    // Tiny entries go in after normalising: dividing 5e-324 by the sum would flush it to 0, and
    // a q of exactly 0 where p has mass makes KL(p‖P_OBRS) infinite for the right reason.
    const draw = () => {
      const tiny = Array.from({ length: V }, (_, v) => v > 0 && rng.uniform() < 0.3);
      const x = Float64Array.from({ length: V }, (_, v) => tiny[v] ? 0 : 0.05 + rng.uniform());
      const s = x.reduce((a, b) => a + b, 0);
      for (let v = 0; v < V; v++) x[v] = tiny[v] ? 5e-324 * (1 + rng.int(3)) : x[v] / s;
      return x;
    };
    const p = draw();
    const q = draw();
    for (const lambda of [0.25, 1, 4, 1e3]) {
      const got = obrsDistribution(p, q, lambda);
      const want = obrsLogSpace(p, q, lambda);
      assert.ok(Number.isFinite(klDivergence(p, got)), `KL finite at λ=${lambda}`);
      for (let v = 0; v < V; v++) {
        if (want[v] < 1e-300) continue; // relative error is meaningless among subnormals
        worst = Math.max(worst, Math.abs(got[v] - want[v]) / want[v]);
      }
      assert.ok(zApprox(p, q, p, lambda, V) <= exactZ(p, q, lambda) * (1 + 1e-12));
    }
  }
  console.log(`P_OBRS vs log-space reference: max rel error ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-12);
});
