/**
 * Every differentiable op in one namespace: `ops.rmsNorm(x, g)`, `ops.crossEntropy(logits, y)`.
 * Each runs in an {@link opScope}: the tensors an op makes on the way (copies of strided inputs,
 * saved statistics, scalar operands) are released with its result, so ops used outside `tidy` and
 * disposed by hand leak nothing.
 *
 * @module
 */
import { empty, opScope } from "../tensor/mod.ts";
import * as el from "./elementwise.ts";
import * as rd from "./reduce.ts";
import * as vw from "./views.ts";
import * as sm from "./softmax.ts";
import * as em from "./embedding.ts";
import * as nm from "./norm.ts";
import * as mm from "./matmul.ts";
import * as at from "./attention.ts";
import * as sg from "./swiglu.ts";
import * as nr from "./norm_rope.ts";
import * as sp from "./split.ts";
import * as qh from "./qkv_heads.ts";
import * as sgm from "./swiglu_matmul.ts";
import * as arm from "./add_rms_matmul.ts";
export type { Operand } from "./elementwise.ts";
export type { CrossEntropyOptions } from "./softmax.ts";
export type { AddRmsNormResult, RopeOptions } from "./norm.ts";
export type { RmsNormRopeOptions } from "./norm_rope.ts";
export type { QkvHeads, QkvNormRopeOptions } from "./qkv_heads.ts";
export type { AttentionOptions } from "./attention.ts";
export type { AddRmsNormMatmulOptions, AddRmsNormMatmulResult } from "./add_rms_matmul.ts";

function scoped<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args) => opScope(() => fn(...args));
}

/** See elementwise.ts `add`. */
export const add: typeof el.add = scoped(el.add);
/** See elementwise.ts `affine`. */
export const affine: typeof el.affine = scoped(el.affine);
/** See elementwise.ts `clamp`. */
export const clamp: typeof el.clamp = scoped(el.clamp);
/** See elementwise.ts `div`. */
export const div: typeof el.div = scoped(el.div);
/** See elementwise.ts `eq`. */
export const eq: typeof el.eq = scoped(el.eq);
/** See elementwise.ts `exp`. */
export const exp: typeof el.exp = scoped(el.exp);
/** See elementwise.ts `gelu`. */
export const gelu: typeof el.gelu = scoped(el.gelu);
/** See elementwise.ts `gt`. */
export const gt: typeof el.gt = scoped(el.gt);
/** See elementwise.ts `log`. */
export const log: typeof el.log = scoped(el.log);
/** See elementwise.ts `lt`. */
export const lt: typeof el.lt = scoped(el.lt);
/** See elementwise.ts `maximum`. */
export const maximum: typeof el.maximum = scoped(el.maximum);
/** See elementwise.ts `minimum`. */
export const minimum: typeof el.minimum = scoped(el.minimum);
/** See elementwise.ts `mul`. */
export const mul: typeof el.mul = scoped(el.mul);
/** See elementwise.ts `neg`. */
export const neg: typeof el.neg = scoped(el.neg);
/** See elementwise.ts `pow`. */
export const pow: typeof el.pow = scoped(el.pow);
/** See elementwise.ts `relu`. */
export const relu: typeof el.relu = scoped(el.relu);
/** See elementwise.ts `sigmoid`. */
export const sigmoid: typeof el.sigmoid = scoped(el.sigmoid);
/** See elementwise.ts `silu`. */
export const silu: typeof el.silu = scoped(el.silu);
/** See swiglu.ts `swiglu`. */
export const swiglu: typeof sg.swiglu = scoped(sg.swiglu);
/** See swiglu.ts `swigluJoined`. */
export const swigluJoined: typeof sg.swigluJoined = scoped(sg.swigluJoined);
/** See swiglu_matmul.ts `swigluMatmul`. */
export const swigluMatmul: typeof sgm.swigluMatmul = scoped(sgm.swigluMatmul);
/** See split.ts `splitLast` (several results: their temporaries stay with the enclosing scope). */
export const splitLast: typeof sp.splitLast = sp.splitLast;
/** See qkv_heads.ts `qkvNormRope` (several results: their temporaries stay with the enclosing scope). */
export const qkvNormRope: typeof qh.qkvNormRope = qh.qkvNormRope;
/** See elementwise.ts `sqrt`. */
export const sqrt: typeof el.sqrt = scoped(el.sqrt);
/** See elementwise.ts `sub`. */
export const sub: typeof el.sub = scoped(el.sub);
/** See elementwise.ts `where`. */
export const where: typeof el.where = scoped(el.where);
/** See reduce.ts `max`. */
export const max: typeof rd.max = scoped(rd.max);
/** See reduce.ts `mean`. */
export const mean: typeof rd.mean = scoped(rd.mean);
/** See reduce.ts `sum`. */
export const sum: typeof rd.sum = scoped(rd.sum);
/** See reduce.ts `sumTo`. */
export const sumTo: typeof rd.sumTo = scoped(rd.sumTo);
/** See views.ts `concat`. */
export const concat: typeof vw.concat = scoped(vw.concat);
/** See views.ts `contiguous`. */
export const contiguous: typeof vw.contiguous = scoped(vw.contiguous);
/** See views.ts `detach`. */
export const detach: typeof vw.detach = scoped(vw.detach);
/** See views.ts `expand`. */
export const expand: typeof vw.expand = scoped(vw.expand);
/** See views.ts `permute`. */
export const permute: typeof vw.permute = scoped(vw.permute);
/** See views.ts `reshape`. */
export const reshape: typeof vw.reshape = scoped(vw.reshape);
/** See views.ts `slice`. */
export const slice: typeof vw.slice = scoped(vw.slice);
/** See views.ts `transpose`. */
export const transpose: typeof vw.transpose = scoped(vw.transpose);
/** See softmax.ts `crossEntropy`. */
export const crossEntropy: typeof sm.crossEntropy = scoped(sm.crossEntropy);
/** See softmax.ts `gatherLast`. */
export const gatherLast: typeof sm.gatherLast = scoped(sm.gatherLast);
/** See softmax.ts `logSoftmax`. */
export const logSoftmax: typeof sm.logSoftmax = scoped(sm.logSoftmax);
/** See softmax.ts `softmax`. */
export const softmax: typeof sm.softmax = scoped(sm.softmax);
/** See embedding.ts `embedding`. */
export const embedding: typeof em.embedding = scoped(em.embedding);
/** See norm.ts `layerNorm`. */
export const layerNorm: typeof nm.layerNorm = scoped(nm.layerNorm);
/** See norm.ts `rmsNorm`. */
export const rmsNorm: typeof nm.rmsNorm = scoped(nm.rmsNorm);
/**
 * See norm.ts `addRmsNorm`. The sum is made outside the op's scope: it is the residual stream,
 * which outlives the normalised rows that adopt the op's temporaries.
 */
export const addRmsNorm: typeof nm.addRmsNorm = (x, r, weight, eps) => {
  if (!nm.fusesAddRms(x, r)) {
    const s = add(x, r);
    return { sum: s, normed: rmsNorm(s, weight, eps) };
  }
  const s = empty(x.shape, "f32", "addRmsNorm");
  try {
    return { sum: s, normed: opScope(() => nm.addRmsNormInto(x, r, weight, eps ?? 1e-6, s)) };
  } catch (e) {
    s.dispose();
    throw e;
  }
};
/**
 * See add_rms_matmul.ts `addRmsNormMatmul`. It scopes itself: the product adopts the op's
 * temporaries, the sum (the residual stream) stays out of them.
 */
export const addRmsNormMatmul: typeof arm.addRmsNormMatmul = arm.addRmsNormMatmul;
/** See norm.ts `rope`. */
export const rope: typeof nm.rope = scoped(nm.rope);
/** See matmul.ts `matmul`. */
export const matmul: typeof mm.matmul = scoped(mm.matmul);
/** See attention.ts `causalSelfAttention`. */
export const causalSelfAttention: typeof at.causalSelfAttention = scoped(at.causalSelfAttention);
/** See norm_rope.ts `rmsNormRope`. */
export const rmsNormRope: typeof nr.rmsNormRope = scoped(nr.rmsNormRope);
import * as af from "./attention_fused.ts";
export type { AttentionImpl } from "./attention.ts";
export type { FusedAttentionOptions } from "./attention_fused.ts";
/** See attention_fused.ts `fusedCausalAttention`. */
export const fusedCausalAttention: typeof af.fusedCausalAttention = scoped(
  af.fusedCausalAttention,
);
