/**
 * Deterministic release of GPU memory: `tidy(fn)` disposes every tensor created inside `fn`
 * except the ones it returns (or marks with `keep`), like tf.js's tidy. Garbage collection never
 * frees GPU buffers here; every buffer goes back to the pool at a known point.
 *
 * @module
 */

/** What a scope needs from a tensor. */
export interface Disposable {
  /** Frees the tensor's storage reference. */
  dispose(): void;
  /** True after dispose. */
  readonly isDisposed: boolean;
}

const scopes: Set<Disposable>[] = [];

/** Registers a new tensor with the innermost scope (called by the Tensor constructor). */
export function track(t: Disposable): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Removes `t` from every open scope so that it outlives them; returns `t`. */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Disposable>): void {
  if (value === null || typeof value !== "object") return;
  if ("dispose" in value && "isDisposed" in value) {
    out.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) { for (const v of value) collect(v, out); }
  else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out);
  }
}

/**
 * Runs `fn`, then disposes every tensor it created that is not part of its result (tensors in a
 * returned array or plain object are kept too) and not marked with {@link keep}. Kept tensors move
 * to the enclosing scope. `fn` must be synchronous: a readback inside would let other work
 * interleave with the scope.
 *
 * @example
 * ```ts
 * const loss = tidy(() => {
 *   const l = model(x).crossEntropy(y);
 *   l.backward();
 *   return l;
 * }); // every activation is back in the pool; loss survives
 * ```
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    // An error must not leak the scope's GPU memory.
    for (const t of scope) t.dispose();
    throw e;
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) {
    throw new Error("tidy: the function must be synchronous (it returned a Promise)");
  }
  const kept = new Set<Disposable>();
  collect(result, kept);
  for (const t of scope) {
    if (kept.has(t)) track(t);
    else if (!t.isDisposed) t.dispose();
  }
  return result;
}

/** A tensor that can hold the temporaries of the op that made it (see {@link opScope}). */
export interface Owner extends Disposable {
  /** Releases `ts` together with this tensor. */
  adopt(ts: Disposable[]): void;
}

/**
 * Runs the body of an op and gives every tensor it created, other than its result, to the result
 * (`adopt`): copies of strided inputs, saved statistics, scalar operands, intermediate views. They
 * are released with the result's `dispose()`, so an op used outside `tidy` leaks nothing; inside a
 * `tidy` they still belong to the scope as well, exactly as before. On error they are released.
 */
export function opScope<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  const live = [...scope].filter((t) => !t.isDisposed);
  for (const t of live) track(t); // the enclosing scope owns them as before
  const r = result as unknown as Owner;
  if (scope.has(r) && typeof r.adopt === "function") r.adopt(live.filter((t) => t !== r));
  return result;
}
