/**
 * The autograd tape, micrograd-style at tensor granularity: an op that reads a tensor needing a
 * gradient attaches a {@link GradNode} (its inputs and a closure mapping the output's gradient to
 * theirs) to its output. `backward` sorts the graph topologically once and runs the closures in
 * reverse, summing gradients that meet; leaves with `requiresGrad` accumulate into `.grad`
 * (in place, so gradients add up across calls until `zeroGrad`). Nothing is read back.
 *
 * @module
 */
import {
  copyInto,
  empty,
  fitsOneBinding,
  type GradNode,
  keep,
  materialize,
  ones,
  rowBlocks,
  type Tensor,
  tidy,
  zeros,
} from "../tensor/mod.ts";
import { fmtShape, sameShape } from "../tensor/shape.ts";
import { accumulateInto, add } from "./elementwise.ts";
import { beginGradSums, endGradSums } from "./grad_sums.ts";

let gradEnabled = true;

/** True when ops currently record the tape. */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `fn` without recording the tape (evaluation, optimizer updates).
 *
 * @example
 * ```ts
 * const logits = noGrad(() => model(x));
 * ```
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when a gradient flows into `t` (a parameter, or the output of a recorded op). */
export function needsGrad(t: Tensor): boolean {
  return t.requiresGrad || t.node !== null;
}

/**
 * Attaches a tape node to `out` when recording and some input needs a gradient; returns `out`.
 * `backward` returns the gradient of each input (or null), each with that input's shape.
 */
export function record(
  out: Tensor,
  op: string,
  parents: Tensor[],
  backward: (grad: Tensor) => (Tensor | null)[],
): Tensor {
  if (gradEnabled && parents.some(needsGrad)) out.node = { op, parents, backward };
  return out;
}

function freed(op: string): GradNode {
  return {
    op,
    parents: [],
    backward: () => {
      throw new Error(
        `backward: the graph through '${op}' was already consumed by an earlier backward(); ` +
          "run the forward again",
      );
    },
  };
}

function topo(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS (a deep model would overflow a recursive one).
  const stack: Array<[Tensor, number]> = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const parents = top[0].node?.parents ?? [];
    if (top[1] < parents.length) {
      const p = parents[top[1]++];
      if (!seen.has(p) && needsGrad(p)) {
        seen.add(p);
        stack.push([p, 0]);
      }
    } else {
      order.push(top[0]);
      stack.pop();
    }
  }
  return order;
}

function own(t: Tensor): Tensor {
  // A view of its own, so that one gradient tensor can sit in several slots and each is disposed once.
  return t.viewAs(t.shape, t.strides, t.offset, "grad");
}

/**
 * Backpropagates from `root`. A non-scalar root needs `grad` (same shape). Leaves with
 * `requiresGrad` receive `.grad += dRoot/dLeaf`; the graph's nodes are released afterwards.
 *
 * @example
 * ```ts
 * const loss = tidy(() => { const l = mlp(x).sub(y).pow(2).mean(); backward(l); return l; });
 * ```
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!needsGrad(root)) {
    throw new Error(`backward: ${root.describe()} does not depend on any tensor with requiresGrad`);
  }
  if (!grad && root.size !== 1) {
    throw new Error(
      `backward: ${root.describe()} is not a scalar; pass an output gradient of shape ${
        fmtShape(root.shape)
      }`,
    );
  }
  grad?.expectDtype("backward", "f32"); // an i32 gradient would be read as float bits
  if (grad && !sameShape(grad.shape, root.shape)) {
    throw new RangeError(
      `backward: gradient shape ${fmtShape(grad.shape)} does not match output shape ${
        fmtShape(root.shape)
      }`,
    );
  }
  noGrad(() => {
    const order = topo(root);
    const grads = new Map<Tensor, Tensor>([[root, grad ? own(grad) : keepIn(ones(root.shape))]]);
    // weights' partial gradient sums are added to their .grad by one dispatch at the end
    beginGradSums();
    let done = false;
    try {
      for (let i = order.length - 1; i >= 0; i--) {
        const t = order[i];
        const g = grads.get(t);
        if (!g) continue;
        grads.delete(t);
        const node = t.node;
        if (node) {
          let pgs: (Tensor | null)[];
          const taken: Tensor[] = [];
          pending = { grads, parents: node.parents, taken };
          try {
            pgs = tidy(() => node.backward(g));
          } catch (e) {
            // Name the op whose backward failed: "used after release" alone does not say where.
            if (e instanceof Error && !e.message.startsWith("backward")) {
              e.message = `backward of '${node.op}': ${e.message}`;
            }
            throw e;
          } finally {
            // a taken gradient was read by a kernel the closure recorded; its sum is in the
            // closure's result for that input, which the loop below stores in its place
            pending = null;
            for (const t of taken) t.dispose();
          }
          node.parents.forEach((p, j) => {
            const pg = pgs[j];
            if (!pg || !needsGrad(p)) return;
            if (!sameShape(pg.shape, p.shape)) {
              throw new Error(
                `backward of '${node.op}': gradient ${
                  fmtShape(pg.shape)
                } for input ${p.describe()}`,
              );
            }
            const prev = grads.get(p);
            if (prev) {
              grads.set(p, keepIn(sumOf(prev, pg)));
              prev.dispose();
            } else grads.set(p, keepIn(own(pg)));
          });
          for (const pg of pgs) pg?.dispose();
          t.node = freed(node.op);
        } else if (t.requiresGrad) {
          const dense = materialize(g);
          inBlocks([leafGrad(t), dense], ([to, from]) => accumulateInto(to, from));
          if (dense !== g) dense.dispose();
        }
        g.dispose();
      }
      done = true;
    } finally {
      endGradSums(done);
      // also on error: in-flight gradients must not leak out of the pool
      for (const g of grads.values()) g.dispose();
    }
  });
}

/**
 * `fn` over flat views of contiguous tensors of one size: the tensors themselves when they fit one
 * storage binding (the usual case, one dispatch), else the same blocks of elements of each, every
 * block within one binding (the sums of gradients of a [151,936, 1024] embedding, 622 MB, where a
 * binding holds 128 MiB). The element-wise kernels then run once per block.
 */
function inBlocks(ts: Tensor[], fn: (views: Tensor[]) => void): void {
  if (ts.every(fitsOneBinding)) return fn(ts);
  // the same blocks for each (one size; checked contiguous and bindable where blocks start)
  const blocks = ts.map((t) => rowBlocks(t, 1, `backward: gradient ${t.describe()}`))[0];
  for (const b of blocks) {
    const views = ts.map((t) => t.viewAs([b.rows], [1], t.offset + b.row0, "grad"));
    try {
      fn(views);
    } finally {
      for (const v of views) v.dispose();
    }
  }
}

// `a + b` of two gradients of one input (a new tensor), block by block when they exceed a binding.
function sumOf(a: Tensor, b: Tensor): Tensor {
  if (fitsOneBinding(a) && fitsOneBinding(b)) return add(a, b);
  const dense = [a, b].map(materialize);
  const out = empty(a.shape, "f32", "grad");
  inBlocks([out, ...dense], ([o, x, y]) => {
    copyInto(x, o);
    accumulateInto(o, y); // x + y, the one f32 add that `add` computes
  });
  dense.forEach((d, i) => d !== [a, b][i] && d.dispose());
  return out;
}

// The gradients met so far while a backward closure runs, for takePendingGrad.
let pending: { grads: Map<Tensor, Tensor>; parents: Tensor[]; taken: Tensor[] } | null = null;

/**
 * For a backward closure: takes the gradient that `input` (one of the op's inputs) has already
 * received from consumers processed earlier, so that the closure adds it into its own gradient
 * for `input` in the same kernel (an RMSNorm on the residual stream adds the stream's gradient to
 * its dx). The tape then keeps the closure's result as the input's whole gradient, where it would
 * otherwise add the two with a dispatch of its own. Null when there is none, when it is not
 * contiguous (a kernel reads it as plain rows), outside a backward closure, or for a tensor that
 * is not an input of the op. The returned tensor is read-only (it
 * may share storage with other gradients) and lives until the closure returns.
 */
export function takePendingGrad(input: Tensor): Tensor | null {
  if (!pending || !pending.parents.includes(input)) return null;
  const g = pending.grads.get(input);
  if (!g || !g.isContiguous || g.dtype !== "f32") return null;
  pending.grads.delete(input);
  pending.taken.push(g);
  return g;
}

// The leaf's `.grad`, created (zero) on first use: in its optimizer's arena when it has one.
function leafGrad(t: Tensor): Tensor {
  if (!t.grad) t.grad = t.gradFactory ? t.gradFactory() : keep(zeros(t.shape));
  return t.grad;
}

/** Where a backward closure may add a gradient itself; see {@link gradSink}. */
export interface GradSink {
  /** The leaf's `.grad`: contiguous, bindable where it starts. */
  grad: Tensor;
  /** The input is a 2-D transposed view of the leaf: add the gradient in the leaf's layout. */
  transposed: boolean;
}

/**
 * The `.grad` a backward closure may add the gradient of `input` into directly, skipping the tape
 * (a matmul computing a weight's gradient then accumulates it in the kernel, instead of writing a
 * temporary that a second dispatch adds to `.grad`). Applies when `input` is a leaf with
 * `requiresGrad`, or a 2-D transposed view of such a leaf (`w.transpose()` of a weight stored as
 * [out, in]); null otherwise, and also when the leaf's `.grad` cannot be bound where it starts.
 * Leaves' gradients are sums, so adding a contribution early changes only the rounding order. A
 * closure that uses the sink returns null for that input.
 */
export function gradSink(input: Tensor): GradSink | null {
  let leaf = input, transposed = false;
  if (input.node) {
    // a transpose view: permute of a contiguous 2-D leaf, reading its storage in place
    const p = input.node.parents[0];
    if (
      input.node.op !== "permute" || input.rank !== 2 || !p || p.rank !== 2 || p.node ||
      !p.isContiguous || input.offset !== p.offset || input.shape[0] !== p.shape[1] ||
      input.shape[1] !== p.shape[0] || input.strides[0] !== 1 || input.strides[1] !== p.shape[1] ||
      input.storageBuffer !== p.storageBuffer
    ) return null;
    leaf = p;
    transposed = true;
  }
  if (!leaf.requiresGrad || leaf.node || !leaf.isContiguous) return null;
  const grad = leafGrad(leaf);
  if (!grad.isContiguous || !grad.isBindableOffset || !sameShape(grad.shape, leaf.shape)) {
    return null;
  }
  return { grad, transposed };
}

// Gradients live across the closures' tidy scopes until the engine disposes them itself.
function keepIn(t: Tensor): Tensor {
  return keep(t);
}
