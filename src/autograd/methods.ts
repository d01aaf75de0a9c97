/**
 * Method syntax on Tensor (`x.matmul(w).add(b).silu()`, `loss.backward()`), installed on the
 * prototype when this module is imported (src/autograd/mod.ts does). Each method is the op of the
 * same name in ops.ts.
 *
 * @module
 */
import { type HostArray, item, read, Tensor } from "../tensor/mod.ts";
import * as ops from "./ops.ts";
import { backward } from "./tape.ts";

declare module "../tensor/tensor.ts" {
  interface Tensor {
    /** See {@link ops.add}. */ add(b: ops.Operand): Tensor;
    /** See {@link ops.sub}. */ sub(b: ops.Operand): Tensor;
    /** See {@link ops.mul}. */ mul(b: ops.Operand): Tensor;
    /** See {@link ops.div}. */ div(b: ops.Operand): Tensor;
    /** See {@link ops.pow}. */ pow(b: ops.Operand): Tensor;
    /** See {@link ops.maximum}. */ maximum(b: ops.Operand): Tensor;
    /** See {@link ops.minimum}. */ minimum(b: ops.Operand): Tensor;
    /** See {@link ops.neg}. */ neg(): Tensor;
    /** See {@link ops.exp}. */ exp(): Tensor;
    /** See {@link ops.log}. */ log(): Tensor;
    /** See {@link ops.sqrt}. */ sqrt(): Tensor;
    /** See {@link ops.silu}. */ silu(): Tensor;
    /** See {@link ops.gelu}. */ gelu(): Tensor;
    /** See {@link ops.relu}. */ relu(): Tensor;
    /** See {@link ops.sigmoid}. */ sigmoid(): Tensor;
    /** See {@link ops.clamp}. */ clamp(lo: number, hi: number): Tensor;
    /** See {@link ops.sum}. */ sum(axes?: number | number[], keepDims?: boolean): Tensor;
    /** See {@link ops.mean}. */ mean(axes?: number | number[], keepDims?: boolean): Tensor;
    /** See {@link ops.max}. */ max(axes?: number | number[], keepDims?: boolean): Tensor;
    /** See {@link ops.matmul}. */ matmul(b: Tensor): Tensor;
    /** See {@link ops.reshape}. */ reshape(shape: readonly number[]): Tensor;
    /** See {@link ops.transpose}. */ transpose(a?: number, b?: number): Tensor;
    /** See {@link ops.permute}. */ permute(perm: readonly number[]): Tensor;
    /** See {@link ops.slice}. */ slice(axis: number, start: number, end?: number): Tensor;
    /** See {@link ops.expand}. */ expand(shape: readonly number[]): Tensor;
    /** See {@link ops.contiguous}. */ contiguous(): Tensor;
    /** See {@link ops.detach}. */ detach(): Tensor;
    /** See {@link ops.softmax}. */ softmax(axis?: number): Tensor;
    /** See {@link ops.logSoftmax}. */ logSoftmax(axis?: number): Tensor;
    /** Backpropagates from this tensor (see tape.ts `backward`). */ backward(grad?: Tensor): void;
    /** Reads the values back (one wait; see creation.ts `read`). */ read(): Promise<HostArray>;
    /** Reads a one-element tensor as a number. */ item(): Promise<number>;
  }
}

const P = Tensor.prototype;
P.add = function (b) {
  return ops.add(this, b);
};
P.sub = function (b) {
  return ops.sub(this, b);
};
P.mul = function (b) {
  return ops.mul(this, b);
};
P.div = function (b) {
  return ops.div(this, b);
};
P.pow = function (b) {
  return ops.pow(this, b);
};
P.maximum = function (b) {
  return ops.maximum(this, b);
};
P.minimum = function (b) {
  return ops.minimum(this, b);
};
P.neg = function () {
  return ops.neg(this);
};
P.exp = function () {
  return ops.exp(this);
};
P.log = function () {
  return ops.log(this);
};
P.sqrt = function () {
  return ops.sqrt(this);
};
P.silu = function () {
  return ops.silu(this);
};
P.gelu = function () {
  return ops.gelu(this);
};
P.relu = function () {
  return ops.relu(this);
};
P.sigmoid = function () {
  return ops.sigmoid(this);
};
P.clamp = function (lo, hi) {
  return ops.clamp(this, lo, hi);
};
P.sum = function (axes, keepDims) {
  return ops.sum(this, axes, keepDims);
};
P.mean = function (axes, keepDims) {
  return ops.mean(this, axes, keepDims);
};
P.max = function (axes, keepDims) {
  return ops.max(this, axes, keepDims);
};
P.matmul = function (b) {
  return ops.matmul(this, b);
};
P.reshape = function (shape) {
  return ops.reshape(this, shape);
};
P.transpose = function (a, b) {
  return ops.transpose(this, a, b);
};
P.permute = function (perm) {
  return ops.permute(this, perm);
};
P.slice = function (axis, start, end) {
  return ops.slice(this, axis, start, end);
};
P.expand = function (shape) {
  return ops.expand(this, shape);
};
P.contiguous = function () {
  return ops.contiguous(this);
};
P.detach = function () {
  return ops.detach(this);
};
P.softmax = function (axis) {
  return ops.softmax(this, axis);
};
P.logSoftmax = function (axis) {
  return ops.logSoftmax(this, axis);
};
P.read = function () {
  return read(this);
};
P.item = function () {
  return item(this);
};
P.backward = function (grad) {
  backward(this, grad);
};
