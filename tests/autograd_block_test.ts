// Gradient check through a whole Qwen-style transformer block: RMSNorm → GQA attention with RoPE →
// residual → RMSNorm → SwiGLU MLP → residual, against the float64 composition of the references.
import { ops } from "../src/autograd/mod.ts";
import {
  type Arr,
  attentionRef,
  mapN,
  matmulRef,
  rmsNormRef,
  ropeRef,
} from "../src/autograd/reference.ts";
import type { Tensor } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { checkOp, randArr, setup } from "./autograd_util.ts";

const [B, T, C, Hq, Hkv, D, F] = [2, 4, 8, 4, 2, 2, 12];
const EPS = 1e-6, BASE = 10000;

function blockGpu([x, g1, wq, wk, wv, wo, g2, wg, wu, wd]: Tensor[]): Tensor {
  const h1 = ops.rmsNorm(x, g1, EPS);
  const q = ops.rope(h1.matmul(wq).reshape([B, T, Hq, D]), { base: BASE });
  const k = ops.rope(h1.matmul(wk).reshape([B, T, Hkv, D]), { base: BASE });
  const v = h1.matmul(wv).reshape([B, T, Hkv, D]);
  const att = ops.causalSelfAttention(q, k, v).reshape([B, T, Hq * D]).matmul(wo);
  const r1 = x.add(att);
  const h2 = ops.rmsNorm(r1, g2, EPS);
  const mlp = h2.matmul(wg).silu().mul(h2.matmul(wu)).matmul(wd);
  return r1.add(mlp);
}

function blockRef([x, g1, wq, wk, wv, wo, g2, wg, wu, wd]: Arr[]): Arr {
  const reshape = (a: Arr, shape: number[]): Arr => ({ data: a.data, shape });
  const h1 = rmsNormRef(x, g1, EPS);
  const q = ropeRef(reshape(matmulRef(h1, wq), [B, T, Hq, D]), "bthd", 0, BASE);
  const k = ropeRef(reshape(matmulRef(h1, wk), [B, T, Hkv, D]), "bthd", 0, BASE);
  const v = reshape(matmulRef(h1, wv), [B, T, Hkv, D]);
  const att = matmulRef(reshape(attentionRef(q, k, v), [B, T, Hq * D]), wo);
  const r1 = mapN((a, b) => a + b, x, att);
  const h2 = rmsNormRef(r1, g2, EPS);
  const gate = mapN((a) => a / (1 + Math.exp(-a)), matmulRef(h2, wg));
  const mlp = matmulRef(mapN((a, b) => a * b, gate, matmulRef(h2, wu)), wd);
  return mapN((a, b) => a + b, r1, mlp);
}

Deno.test("gradient check through a transformer block (RMSNorm, GQA attention with RoPE, SwiGLU)", async () => {
  await setup();
  const rng = new Rng(1234);
  const s = (n: number) => 1 / Math.sqrt(n);
  const inputs = [
    randArr(rng, [B, T, C]),
    randArr(rng, [C], 0.2, 1),
    randArr(rng, [C, Hq * D], s(C)),
    randArr(rng, [C, Hkv * D], s(C)),
    randArr(rng, [C, Hkv * D], s(C)),
    randArr(rng, [Hq * D, C], s(Hq * D)),
    randArr(rng, [C], 0.2, 1),
    randArr(rng, [C, F], s(C)),
    randArr(rng, [C, F], s(C)),
    randArr(rng, [F, C], s(F)),
  ];
  await checkOp({
    name: "transformer block",
    inputs,
    gpu: blockGpu,
    ref: blockRef,
    fwd: [1e-4, 1e-4],
    bwd: [2e-4, 2e-3],
  });
});
