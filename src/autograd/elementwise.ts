/**
 * Elementwise ops with numpy broadcasting, forward and backward. Same-shape contiguous operands run
 * the vec4 kernels (one read per input, one write: memory-bound); broadcasting and strided views
 * run the strided kernels. A backward sums the gradient over broadcast axes (`sumTo`).
 *
 * @module
 */
import unarySource from "../../kernels/ops_unary.wgsl" with { type: "text" };
import binarySource from "../../kernels/ops_binary.wgsl" with { type: "text" };
import whereSource from "../../kernels/ops_where.wgsl" with { type: "text" };
import type { Kernel } from "../gpu/mod.ts";
import {
  broadcastShapes,
  empty,
  f32,
  full,
  launch1d,
  materialize,
  params,
  runtime,
  sameShape,
  type Tensor,
} from "../tensor/mod.ts";
import { broadcastStrides, fmtShape } from "../tensor/shape.ts";
import { needsGrad, record } from "./tape.ts";
import { sumTo } from "./reduce.ts";

const unaryKernel: Kernel = { name: "ops_unary", code: unarySource };
const binaryKernel: Kernel = { name: "ops_binary", code: binarySource };
const whereKernel: Kernel = { name: "ops_where", code: whereSource };

/** Unary op codes of kernels/ops_unary.wgsl. */
const U = {
  neg: 0,
  exp: 1,
  log: 2,
  sqrt: 3,
  pow: 4,
  affine: 5,
  clamp: 6,
  silu: 7,
  gelu: 8,
  relu: 9,
  sigmoid: 10,
} as const;
/** Binary op codes of kernels/ops_binary.wgsl. */
const B = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  pow: 4,
  max: 5,
  min: 6,
  maxmask: 7,
  eq: 8,
  gt: 9,
  lt: 10,
} as const;

/** A tensor or a number (broadcast as a scalar). */
export type Operand = Tensor | number;

function unaryRaw(x: Tensor, code: number, name: string, a = 0, b = 0): Tensor {
  x.expectDtype(name, "f32");
  const xs = materialize(x);
  const out = empty(x.shape, "f32", name);
  const n4 = Math.ceil(x.size / 4);
  if (n4 > 0) {
    launch1d(
      runtime(),
      unaryKernel,
      "forward",
      [xs.binding, out.binding, params([n4, 0, f32(a), f32(b)])],
      n4,
      { OP: code },
    );
  }
  return out;
}

function unaryGrad(x: Tensor, y: Tensor, g: Tensor, code: number, a = 0, b = 0): Tensor {
  const xs = materialize(x);
  const gs = materialize(g);
  const dx = empty(x.shape, "f32", "grad");
  const n4 = Math.ceil(x.size / 4);
  if (n4 > 0) {
    launch1d(
      runtime(),
      unaryKernel,
      "backward",
      [xs.binding, y.binding, params([n4, 0, f32(a), f32(b)]), gs.binding, dx.binding],
      n4,
      { OP: code },
    );
  }
  return dx;
}

function unary(name: keyof typeof U, x: Tensor, a = 0, b = 0): Tensor {
  const y = unaryRaw(x, U[name], name, a, b);
  return record(y, name, [x], (g) => [unaryGrad(x, y, g, U[name], a, b)]);
}

/** -x */
export const neg = (x: Tensor): Tensor => unary("neg", x);
/** e^x */
export const exp = (x: Tensor): Tensor => unary("exp", x);
/** Natural log (NaN below 0, -inf at 0, as in float math). */
export const log = (x: Tensor): Tensor => unary("log", x);
/** √x */
export const sqrt = (x: Tensor): Tensor => unary("sqrt", x);
/** x·σ(x) (the SwiGLU gate). */
export const silu = (x: Tensor): Tensor => unary("silu", x);
/** GELU, tanh approximation (GPT-2, llm.c). */
export const gelu = (x: Tensor): Tensor => unary("gelu", x);
/** max(x, 0) */
export const relu = (x: Tensor): Tensor => unary("relu", x);
/** 1 / (1 + e^-x) */
export const sigmoid = (x: Tensor): Tensor => unary("sigmoid", x);
/** scale·x + shift in one pass. */
export const affine = (x: Tensor, scale: number, shift = 0): Tensor =>
  unary("affine", x, scale, shift);

/** clamp(x, lo, hi); the gradient passes where lo <= x <= hi. */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  if (!(lo <= hi)) throw new RangeError(`clamp: lo ${lo} must be <= hi ${hi}`);
  return unary("clamp", x, lo, hi);
}

function binaryRaw(a: Tensor, b: Tensor, code: number, name: string): Tensor {
  a.expectDtype(name, "f32");
  b.expectDtype(name, "f32");
  const shape = broadcastShapes(a.shape, b.shape, name);
  const out = empty(shape, "f32", name);
  if (out.size === 0) return out;
  const rt = runtime();
  if (a.isContiguous && b.isContiguous && sameShape(a.shape, shape) && sameShape(b.shape, shape)) {
    const n4 = Math.ceil(out.size / 4);
    const p = params([n4, 0, 0, 0], [], [], []);
    launch1d(rt, binaryKernel, "vec4_main", [a.binding, b.binding, out.binding, p], n4, {
      OP: code,
    });
  } else if (a.isContiguous && b.isContiguous && sameShape(a.shape, shape) && b.size === 1) {
    const n4 = Math.ceil(out.size / 4);
    const p = params([n4, 0, 0, 0], [], [], []);
    launch1d(rt, binaryKernel, "vec4_scalar", [a.binding, b.binding, out.binding, p], n4, {
      OP: code,
    });
  } else if (isRowBroadcast(a, b, shape)) {
    const n4 = Math.ceil(out.size / 4);
    const p = params([n4, b.size / 4, 0, 0], [], [], []);
    launch1d(rt, binaryKernel, "vec4_rows", [a.binding, b.binding, out.binding, p], n4, {
      OP: code,
    });
  } else {
    const p = params(
      [out.size, shape.length, a.offset, b.offset],
      shape,
      broadcastStrides(a.shape, a.strides, shape),
      broadcastStrides(b.shape, b.strides, shape),
    );
    launch1d(
      rt,
      binaryKernel,
      "strided",
      [a.storageBuffer, b.storageBuffer, out.binding, p],
      out.size,
      {
        OP: code,
      },
    );
  }
  return out;
}

// b (contiguous, size a multiple of 4) equals the trailing axes of a dense a: a bias row.
function isRowBroadcast(a: Tensor, b: Tensor, shape: readonly number[]): boolean {
  if (!a.isContiguous || !b.isContiguous || !sameShape(a.shape, shape) || b.size % 4 !== 0) {
    return false;
  }
  const bs = [...b.shape];
  while (bs.length && bs[0] === 1) bs.shift();
  const tail = shape.slice(shape.length - bs.length);
  return bs.length > 0 && sameShape(bs, tail) && b.size > 0;
}

function scalar(v: number): Tensor {
  return full([], v);
}

function asTensor(v: Operand): Tensor {
  return typeof v === "number" ? scalar(v) : v;
}

/** a + b (broadcasting). */
export function add(a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") return affine(a, 1, b);
  const out = binaryRaw(a, b, B.add, "add");
  // A gradient is only computed for an input that needs one: summing the attention scores'
  // gradient down to the causal mask's shape, for example, would be a wasted pass over [B,H,T,T].
  return record(out, "add", [a, b], (g) => [
    needsGrad(a) ? sumTo(g, a.shape) : null,
    needsGrad(b) ? sumTo(g, b.shape) : null,
  ]);
}

/** a - b (broadcasting). */
export function sub(a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") return affine(a, 1, -b);
  const out = binaryRaw(a, b, B.sub, "sub");
  return record(out, "sub", [a, b], (g) => [
    needsGrad(a) ? sumTo(g, a.shape) : null,
    needsGrad(b) ? sumTo(neg(g), b.shape) : null,
  ]);
}

/** a · b (broadcasting). */
export function mul(a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") return affine(a, b, 0);
  const out = binaryRaw(a, b, B.mul, "mul");
  return record(out, "mul", [a, b], (g) => [
    needsGrad(a) ? sumTo(mul(g, b), a.shape) : null,
    needsGrad(b) ? sumTo(mul(g, a), b.shape) : null,
  ]);
}

/** a / b (broadcasting). */
export function div(a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") return affine(a, 1 / b, 0);
  const out = binaryRaw(a, b, B.div, "div");
  return record(out, "div", [a, b], (g) => [
    needsGrad(a) ? sumTo(div(g, b), a.shape) : null,
    needsGrad(b) ? sumTo(neg(div(mul(g, out), b)), b.shape) : null,
  ]);
}

/**
 * a^b: a number exponent runs the unary kernel; a tensor exponent also gets a gradient (a^b·ln a,
 * taken as 0 where a^b = 0, e.g. a = 0 with b > 0, where the product would be 0·(-inf) = NaN).
 * Real arithmetic: 0^b = +inf for b < 0, a negative base with a fractional exponent gives NaN.
 */
export function pow(a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") return unary("pow", a, b);
  const out = binaryRaw(a, b, B.pow, "pow");
  return record(out, "pow", [a, b], (g) => [
    sumTo(mul(mul(g, b), pow(a, sub(b, 1))), a.shape),
    sumTo(where(eq(out, 0), 0, mul(mul(g, out), log(a))), b.shape),
  ]);
}

/** Elementwise maximum; at ties each side gets half the gradient. NaN propagates. */
export function maximum(a: Tensor, b: Operand): Tensor {
  const bt = asTensor(b);
  const out = binaryRaw(a, bt, B.max, "maximum");
  return record(out, "maximum", [a, bt], (g) => [
    sumTo(mul(g, binaryRaw(a, bt, B.maxmask, "maxmask")), a.shape),
    sumTo(mul(g, binaryRaw(bt, a, B.maxmask, "maxmask")), bt.shape),
  ]);
}

/** Elementwise minimum; at ties each side gets half the gradient. NaN propagates. */
export function minimum(a: Tensor, b: Operand): Tensor {
  const bt = asTensor(b);
  const out = binaryRaw(a, bt, B.min, "minimum");
  return record(out, "minimum", [a, bt], (g) => [
    sumTo(mul(g, binaryRaw(bt, a, B.maxmask, "maxmask")), a.shape),
    sumTo(mul(g, binaryRaw(a, bt, B.maxmask, "maxmask")), bt.shape),
  ]);
}

/** 1 where a == b else 0 (f32 mask, no gradient). */
export const eq = (a: Tensor, b: Operand): Tensor => binaryRaw(a, asTensor(b), B.eq, "eq");
/** 1 where a > b else 0 (f32 mask, no gradient). */
export const gt = (a: Tensor, b: Operand): Tensor => binaryRaw(a, asTensor(b), B.gt, "gt");
/** 1 where a < b else 0 (f32 mask, no gradient). */
export const lt = (a: Tensor, b: Operand): Tensor => binaryRaw(a, asTensor(b), B.lt, "lt");

/**
 * `cond ? a : b` elementwise with broadcasting of all three. `cond` is an f32 mask (non-zero is
 * true) or an i32/u32 tensor. Gradients flow to a where cond holds and to b elsewhere.
 */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const at = asTensor(a);
  const bt = asTensor(b);
  at.expectDtype("where", "f32");
  bt.expectDtype("where", "f32");
  cond.expectDtype("where", "f32", "i32", "u32");
  const shape = broadcastShapes(broadcastShapes(cond.shape, at.shape, "where"), bt.shape, "where");
  const out = whereRaw(cond, at, bt, shape);
  return record(out, "where", [at, bt], (g) => {
    const zero = scalar(0);
    return [
      sumTo(whereRaw(cond, g, zero, shape), at.shape),
      sumTo(whereRaw(cond, zero, g, shape), bt.shape),
    ];
  });
}

function whereRaw(cond: Tensor, a: Tensor, b: Tensor, shape: number[]): Tensor {
  const out = empty(shape, "f32", "where");
  if (out.size === 0) return out;
  const p = params(
    [out.size, shape.length, cond.offset, a.offset, b.offset, 0, 0, 0],
    shape,
    broadcastStrides(cond.shape, cond.strides, shape),
    broadcastStrides(a.shape, a.strides, shape),
    broadcastStrides(b.shape, b.strides, shape),
  );
  launch1d(
    runtime(),
    whereKernel,
    "main",
    [cond.storageBuffer, a.storageBuffer, b.storageBuffer, out.binding, p],
    out.size,
    {
      COND_F32: cond.dtype === "f32" ? 1 : 0,
    },
  );
  return out;
}

/** `target += src` in place (same shape, both contiguous): gradient accumulation. */
export function accumulateInto(target: Tensor, src: Tensor): void {
  if (!sameShape(target.shape, src.shape) || !target.isContiguous || !src.isContiguous) {
    throw new RangeError(
      `accumulate: ${fmtShape(src.shape)} into ${
        fmtShape(target.shape)
      } needs equal contiguous shapes`,
    );
  }
  const n4 = Math.ceil(target.size / 4);
  if (n4 > 0) {
    launch1d(runtime(), binaryKernel, "accumulate", [
      src.binding,
      target.binding,
      params([n4, 0, 0, 0], [], [], []),
    ], n4);
  }
}
