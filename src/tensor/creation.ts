/**
 * Creating tensors (from host arrays, constants, seeded GPU random draws), materialising strided
 * views, and batched readback.
 *
 * @module
 */
import fillSource from "../../kernels/tensor_fill.wgsl" with { type: "text" };
import copySource from "../../kernels/tensor_copy.wgsl" with { type: "text" };
import { type Binding, grid, type Kernel } from "../gpu/mod.ts";
import { type DType, type HostArray, Storage, Tensor } from "./tensor.ts";
import { runtime, type TensorRuntime } from "./runtime.ts";
import { type F32, f32, params } from "./params.ts";
import { fitsOneBinding, rowBlocks } from "./blocks.ts";
import { hash3 } from "../util/rng.ts";
import { checkShape, contiguousStrides, fmtShape, sizeOf } from "./shape.ts";

const fillKernel: Kernel = { name: "tensor_fill", code: fillSource };
/**
 * The strided-copy kernel (`kernels/tensor_copy.wgsl`, entry `main`): what {@link copyInto} runs,
 * exported for code that copies from a raw buffer into a tensor with the same pipeline.
 */
export const stridedCopyKernel: Kernel = { name: "tensor_copy", code: copySource };
const WG = 256;

/** Records a 1-D launch of `count` threads in workgroups of 256 (2-D grid beyond the limit). */
export function launch1d(
  rt: TensorRuntime,
  kernel: Kernel,
  entryPoint: string,
  bindings: Binding[],
  count: number,
  constants?: Record<string, number>,
): void {
  rt.dispatch({
    kernel,
    entryPoint,
    bindings,
    constants,
    workgroups: grid(Math.ceil(count / WG)),
  });
}

/** A new contiguous tensor with undefined contents (kernels write every element). */
export function empty(shape: readonly number[], dtype: DType = "f32", op = "empty"): Tensor {
  checkShape(shape);
  const rt = runtime();
  return new Tensor(new Storage(rt, Math.max(1, sizeOf(shape))), shape, dtype, op);
}

// One fill-kernel entry point over contiguous `t`: `head(count, base)` gives the parameters of
// `count` elements starting at element `base`. A tensor over one storage binding is filled block
// by block (one dispatch each, `base` keeping the random draws those of the whole tensor).
function fillEntry(
  t: Tensor,
  entry: string,
  head: (count: number, base: number) => Array<number | F32>,
): void {
  if (t.size === 0) return;
  const rt = runtime();
  if (fitsOneBinding(t)) {
    launch1d(rt, fillKernel, entry, [t.binding, params(head(t.size, 0))], t.size);
    return;
  }
  for (const b of rowBlocks(t, 1, `${entry}: ${t.describe()}`)) {
    launch1d(rt, fillKernel, entry, [b.binding, params(head(b.rows, b.row0))], b.rows);
  }
}

function fillBits(t: Tensor, bits: number): Tensor {
  fillEntry(t, "fill", (n) => [n, 0, 0, bits, 0, 0, 0, 0]);
  return t;
}

function bitsOf(value: number, dtype: DType): number {
  if (dtype === "f32") return new Uint32Array(new Float32Array([value]).buffer)[0];
  if (!Number.isInteger(value)) {
    throw new TypeError(`full: ${value} is not an integer for ${dtype}`);
  }
  return value >>> 0;
}

/** A tensor filled with `value`. */
export function full(shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
  return fillBits(empty(shape, dtype, "full"), bitsOf(value, dtype));
}

/** Zeros. */
export function zeros(shape: readonly number[], dtype: DType = "f32"): Tensor {
  return full(shape, 0, dtype);
}

/** Ones. */
export function ones(shape: readonly number[], dtype: DType = "f32"): Tensor {
  return full(shape, 1, dtype);
}

/** Overwrites every element of a contiguous tensor with `value` (used to zero gradients in place). */
export function fillInPlace(t: Tensor, value: number): Tensor {
  if (!t.isContiguous) throw new Error(`fill: ${t.describe()} is a strided view`);
  return fillBits(t, bitsOf(value, t.dtype));
}

/**
 * A tensor holding `data` (a typed array, or numbers) with `shape` (default: 1-D). The dtype follows
 * the typed array (Int32Array → i32, Uint32Array → u32) unless given.
 *
 * @example
 * ```ts
 * const x = tensor([1, 2, 3, 4], [2, 2]);
 * const ids = tensor(new Int32Array([3, 1]));
 * ```
 */
export function tensor(
  data: ArrayLike<number>,
  shape?: readonly number[],
  dtype?: DType,
): Tensor {
  const dt: DType = dtype ??
    (data instanceof Int32Array ? "i32" : data instanceof Uint32Array ? "u32" : "f32");
  const s = shape ?? [data.length];
  checkShape(s);
  if (sizeOf(s) !== data.length) {
    throw new RangeError(`tensor: ${data.length} values do not fill shape ${fmtShape(s)}`);
  }
  const host = dt === "f32"
    ? Float32Array.from(data)
    : dt === "i32"
    ? Int32Array.from(data)
    : Uint32Array.from(data);
  if (dt !== "f32" && host.some((v, i) => v !== data[i])) {
    throw new TypeError(`tensor: values for a ${dt} tensor must be integers in range`);
  }
  const t = empty(s, dt, "input");
  runtime().write(t.buffer, host);
  if (!(host instanceof Float32Array)) t.hostValues = host;
  return t;
}

/** Options of the random creation functions. */
export interface RandomOptions {
  /** Seed (u32). */
  seed: number;
  /** Counter stream (u32), so that two tensors drawn with one seed differ; default 0. */
  stream?: number;
}

// Seeds and streams travel as u32: anything else would wrap silently into another stream's draws.
function checkRandom(
  op: string,
  opts: RandomOptions,
  a: number,
  b: number,
  names: [string, string],
) {
  for (const [k, v] of [["seed", opts.seed], ["stream", opts.stream ?? 0]] as const) {
    if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 32)) {
      throw new RangeError(`${op}: ${k} ${v} must be an integer in [0, 2^32)`);
    }
  }
  [a, b].forEach((v, i) => {
    if (!Number.isFinite(v)) throw new RangeError(`${op}: ${names[i]} ${v} must be finite`);
  });
}

/**
 * Normal draws `mean + std·z`, z from Box–Muller on `uniformAt(seed, stream, 2i)` (shifted to (0, 1])
 * and `uniformAt(seed, stream, 2i + 1)`: reproducible on the CPU by {@link normalAtRef}.
 */
export function randn(
  shape: readonly number[],
  opts: RandomOptions & { mean?: number; std?: number },
): Tensor {
  checkRandom("randn", opts, opts.mean ?? 0, opts.std ?? 1, ["mean", "std"]);
  checkShape(shape);
  if (sizeOf(shape) > 2 ** 31) {
    throw new RangeError(`randn: ${fmtShape(shape)} needs more than 2^32 counter values`);
  }
  const t = empty(shape, "f32", "randn");
  const [seed, stream, mean, std] = [opts.seed, opts.stream ?? 0, opts.mean ?? 0, opts.std ?? 1];
  fillEntry(t, "rand_normal", (n, base) => [n, seed, stream, 0, f32(mean), f32(std), base, 0]);
  return t;
}

/** Uniform draws in [lo, hi) from `uniformAt(seed, stream, i)`. */
export function randu(
  shape: readonly number[],
  opts: RandomOptions & { lo?: number; hi?: number },
): Tensor {
  checkRandom("randu", opts, opts.lo ?? 0, opts.hi ?? 1, ["lo", "hi"]);
  const t = empty(shape, "f32", "randu");
  const [seed, stream, lo, hi] = [opts.seed, opts.stream ?? 0, opts.lo ?? 0, opts.hi ?? 1];
  fillEntry(t, "rand_uniform", (n, base) => [n, seed, stream, 0, f32(lo), f32(hi), base, 0]);
  return t;
}

/**
 * Copies the elements of `src` (any strides) into the region of `dst` at `dstOffset` with `dstStrides`
 * (default: `dst` itself), one dispatch.
 */
export function copyInto(
  src: Tensor,
  dst: Tensor,
  dstStrides: readonly number[] = dst.strides,
  dstOffset = dst.offset,
): void {
  if (src.size === 0) return;
  // Whole buffers as before; a buffer over one binding is bound around the view (offsets then
  // count from the binding's start).
  const from = src.stridedBinding;
  const to = dstOffset === dst.offset && sameStrides(dstStrides, dst.strides)
    ? dst.stridedBinding
    : { binding: dst.storageBuffer, offset: dstOffset };
  const p = params(
    [src.size, src.rank, from.offset, to.offset],
    [...src.shape],
    [...src.strides],
    [...dstStrides],
  );
  launch1d(runtime(), stridedCopyKernel, "main", [from.binding, to.binding, p], src.size);
}

function sameStrides(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** `t` itself when contiguous, else a new contiguous copy (no gradient; autograd wraps it). */
export function materialize(t: Tensor): Tensor {
  if (t.isContiguous) return t;
  const out = empty(t.shape, t.dtype, "contiguous");
  copyInto(t, out, contiguousStrides(t.shape), 0);
  return out;
}

/**
 * Reads several tensors with one submit and one wait; strided views are materialised first.
 *
 * @example
 * ```ts
 * const [lossValue, logits] = await readAll([loss, out]);
 * ```
 */
export async function readAll(tensors: readonly Tensor[]): Promise<HostArray[]> {
  const rt = runtime();
  const dense = tensors.map((t) => materialize(t));
  const bytes = await rt.read(
    dense.map((t) => ({ buffer: t.storageBuffer, offset: t.offset * 4, size: t.size * 4 })),
  );
  dense.forEach((d, i) => d !== tensors[i] && d.dispose());
  return bytes.map((b, i) => {
    const dt = tensors[i].dtype;
    return dt === "f32"
      ? new Float32Array(b)
      : dt === "i32"
      ? new Int32Array(b)
      : new Uint32Array(b);
  });
}

/** Reads one tensor. */
export async function read(t: Tensor): Promise<HostArray> {
  return (await readAll([t]))[0];
}

/** Reads a one-element tensor as a number. */
export async function item(t: Tensor): Promise<number> {
  if (t.size !== 1) throw new RangeError(`item: ${t.describe()} has ${t.size} elements, not 1`);
  return (await read(t))[0];
}

/** The CPU mirror of `randn`'s draw at element `i` (float64). */
export function normalAtRef(seed: number, stream: number, i: number): number {
  const hash = hash3;
  const u1 = (hash(seed, stream, 2 * i) >>> 8) / 16777216 + 1 / 16777216;
  const u2 = (hash(seed, stream, 2 * i + 1) >>> 8) / 16777216;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}
