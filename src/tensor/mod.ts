/**
 * GPU tensors: storage, views, creation, the buffer pool, scopes and batched readback. Ops and
 * autograd live in src/autograd (import src/autograd/mod.ts for `x.add(y)`-style methods).
 *
 * @module
 */
export * from "./tensor.ts";
export * from "./runtime.ts";
export * from "./pool.ts";
export * from "./scope.ts";
export * from "./creation.ts";
export * from "./params.ts";
export * from "./arena.ts";
export * from "./blocks.ts";
export {
  broadcastShapes,
  contiguousStrides,
  fmtShape,
  MAX_RANK,
  normAxes,
  normAxis,
  sameShape,
  sizeOf,
} from "./shape.ts";
