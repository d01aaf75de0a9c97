// qkvNormRope with `bias` (Qwen2's q/k/v biases, added inside kernels/ops_qkv_heads.wgsl before the
// norm and the rotation) against the composed reference: `add(joined, bias)` then qkvNormRope
// without a bias. The forward bit for bit (the kernel's x + b is the add's); the gradients of the
// joined input, the bias and the norm weights for a loss reading q, k and v (or some of them), with
// the bias a leaf (its gradient rides the pass's deferred sums, or one column sum when deferral is
// off) and a computed tensor (the tape's path); the composed path of heads past the kernel
// (D > 2048); a bias of the wrong shape.
import assert from "node:assert/strict";
import { ops, setDeferredGradSums } from "../src/autograd/mod.ts";
import { readAll, type Tensor, tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, setup } from "./autograd_util.ts";

await setup();
const rng = new Rng(31);

interface Case {
  B: number;
  T: number;
  Hq: number;
  Hkv: number;
  D: number;
  norms: boolean;
  uses: [boolean, boolean, boolean];
  /** "leaf": a parameter; "computed": mul(leaf, 1.5), so the gradient goes through the tape. */
  bias: "leaf" | "computed";
  deferred: boolean;
}

const CASES: Case[] = [
  {
    B: 2,
    T: 3,
    Hq: 4,
    Hkv: 2,
    D: 8,
    norms: true,
    uses: [true, true, true],
    bias: "leaf",
    deferred: true,
  },
  {
    B: 2,
    T: 3,
    Hq: 4,
    Hkv: 2,
    D: 8,
    norms: true,
    uses: [true, true, true],
    bias: "leaf",
    deferred: false,
  },
  {
    B: 1,
    T: 5,
    Hq: 2,
    Hkv: 1,
    D: 16,
    norms: false,
    uses: [true, false, true],
    bias: "computed",
    deferred: true,
  },
  {
    B: 3,
    T: 1,
    Hq: 3,
    Hkv: 3,
    D: 6,
    norms: true,
    uses: [false, true, false],
    bias: "leaf",
    deferred: true,
  },
  {
    B: 1,
    T: 2,
    Hq: 1,
    Hkv: 1,
    D: 2050,
    norms: true,
    uses: [true, true, true],
    bias: "leaf",
    deferred: true,
  },
];

const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => s * rng.normal());

for (const c of CASES) {
  const label = `B${c.B} T${c.T} Hq${c.Hq} Hkv${c.Hkv} D${c.D} norms ${c.norms} uses ${
    ["q", "k", "v"].filter((_, i) => c.uses[i]).join("")
  } bias ${c.bias}${c.deferred ? "" : " (deferred sums off)"}`;
  Deno.test(`qkvNormRope bias ${label}: equals add(joined, bias) then qkvNormRope, forward and gradients`, async () => {
    const { B, T, Hq, Hkv, D } = c;
    const H = Hq + 2 * Hkv;
    const xs = rand(B * T * H * D, 2), bs = rand(H * D), qn = rand(D, 0.3), kn = rand(D, 0.3);
    qn.forEach((v, i) => (qn[i] = 1 + v));
    kn.forEach((v, i) => (kn[i] = 1 + v));
    const coef = [rand(B * T * Hq * D), rand(B * T * Hkv * D), rand(B * T * Hkv * D)];
    const opts = { heads: Hq, kvHeads: Hkv, headDim: D, eps: 1e-6, offset: 3, base: 1e4 };
    // one run: the fused bias (`fused`) or the add in front (reference); outputs then gradients
    const run = async (fused: boolean): Promise<Float32Array[]> => {
      const leaf = (d: Float32Array, shape: number[]) => {
        const t = tensor(d, shape);
        t.requiresGrad = true;
        return t;
      };
      const x = leaf(xs, [B, T, H * D]), b = leaf(bs, [H * D]);
      const wq = c.norms ? leaf(qn, [D]) : null, wk = c.norms ? leaf(kn, [D]) : null;
      setDeferredGradSums(c.deferred);
      try {
        const outs = tidy(() => {
          const bias = c.bias === "leaf" ? b : ops.mul(b, 1.5);
          const { q, k, v } = fused
            ? ops.qkvNormRope(x, wq, wk, { ...opts, bias })
            : ops.qkvNormRope(ops.add(x, bias), wq, wk, opts);
          const terms = [q, k, v].flatMap((t, i) =>
            c.uses[i] ? [ops.sum(ops.mul(t, tensor(coef[i], t.shape)))] : []
          );
          terms.reduce((s, t) => ops.add(s, t)).backward();
          return [q, k, v];
        });
        // a weight the loss does not reach has no gradient: read as zeros
        const grads = [x, b, ...(wq && wk ? [wq, wk] : [])].map((t) =>
          t.grad ?? tensor(new Float32Array(t.size), t.shape)
        );
        const host = (await readAll([...outs, ...grads])) as Float32Array[];
        for (const t of [...outs, x, b, wq, wk]) t?.dispose();
        return host;
      } finally {
        setDeferredGradSums(true);
      }
    };
    const got = await run(true), want = await run(false);
    const names = ["q", "k", "v", "d joined", "d bias", "d qNorm", "d kNorm"];
    got.forEach((g, i) => {
      if (i < 3) assert.deepEqual(g, want[i], `${names[i]}: forward differs from the add`);
      else assertClose(names[i], g, want[i], 1e-5, 1e-4);
    });
    // the bias's gradient is the column sum of d(joined) (times the computed bias's 1.5): a check
    // that is not the same code
    const dj = got[3], db = got[4], sums = new Float64Array(H * D);
    const scale = c.bias === "leaf" ? 1 : 1.5;
    for (let r = 0; r < B * T; r++) {
      for (let j = 0; j < H * D; j++) sums[j] += scale * dj[r * H * D + j];
    }
    assertClose("d bias vs column sums of d joined", db, sums, 1e-5, 1e-4);
    assertNoGpuErrors();
  });
}

Deno.test("qkvNormRope refuses a bias of the wrong shape, naming it", () => {
  const x = tensor(new Float32Array(2 * 4 * 8), [2, 32]);
  const opts = { heads: 2, kvHeads: 1, headDim: 8 };
  for (const bad of [tensor(new Float32Array(31)), tensor(new Float32Array(32), [4, 8])]) {
    assert.throws(
      () => ops.qkvNormRope(x, null, null, { ...opts, bias: bad as Tensor }),
      /bias must be \[\(heads \+ 2·kvHeads\)·headDim\] = \[32\]/,
    );
    bad.dispose();
  }
  x.dispose();
});
