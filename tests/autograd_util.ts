// Shared by the autograd tests: device setup with a GPU-error trap, seeded f32-exact inputs, and
// `checkOp`, which compares an op's GPU forward with its float64 reference, its GPU backward with
// central finite differences of that reference, and (for a few coordinates) with finite
// differences of the GPU forward itself.
import assert from "node:assert/strict";
import { type Arr, arr, finiteDiff } from "../src/autograd/reference.ts";
import { noGrad } from "../src/autograd/mod.ts";
import {
  initTensors,
  packTensors,
  readAll,
  runtime,
  type Tensor,
  tensor,
  tidy,
} from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";

export const gpuErrors: string[] = [];
let ready = false;

/** The runtime, with uncaptured GPU errors collected into {@link gpuErrors}. */
export async function setup() {
  const rt = await initTensors();
  if (!ready) {
    rt.gpu.device.addEventListener("uncapturederror", (e) => {
      gpuErrors.push((e as GPUUncapturedErrorEvent).error.message);
    });
    ready = true;
  }
  return rt;
}

/**
 * Runs `fn` (synchronously) with the adapter choosing kernels as a GPU does (skinny matmuls with
 * their fused prologues; a CPU adapter otherwise keeps the prologues off), then restores it.
 */
export function asGpu<T>(fn: () => T): T {
  const gpu = runtime().gpu as { isFallback: boolean }, was = gpu.isFallback;
  gpu.isFallback = false;
  try {
    return fn();
  } finally {
    gpu.isFallback = was;
  }
}

/**
 * Runs `fn` with the runtime's storage binding limit at `limit` bytes (null: the device's), then
 * restores the device's; returns its value and the dispatches it recorded.
 */
export async function atBindingLimit<T>(
  limit: number | null,
  fn: () => Promise<T>,
): Promise<[T, number]> {
  const rt = runtime();
  rt.flush();
  const before = rt.counters.dispatches;
  rt.storageBindingLimit = limit ?? rt.deviceBindingLimit;
  try {
    const out = await fn();
    return [out, rt.counters.dispatches - before];
  } finally {
    rt.storageBindingLimit = rt.deviceBindingLimit;
  }
}

/** Throws when the GPU reported an error since the last call. */
export function assertNoGpuErrors(): void {
  if (gpuErrors.length) throw new Error(`GPU errors: ${gpuErrors.splice(0).join("; ")}`);
}

/** Normal draws rounded to f32 so the GPU input and the reference input are equal. */
export function randArr(rng: Rng, shape: number[], scale = 1, shift = 0): Arr {
  const n = shape.reduce((p, d) => p * d, 1);
  return arr(Array.from({ length: n }, () => Math.fround(shift + scale * rng.normal())), shape);
}

/** Uploads an Arr as an f32 tensor. */
export function up(a: Arr, requiresGrad = false): Tensor {
  const t = tensor(Float32Array.from(a.data), a.shape);
  t.requiresGrad = requiresGrad;
  return t;
}

/** Uploads Arrs packed in one arena (as a Transformer's parameters are), each with requiresGrad. */
export function upPacked(as: Arr[]): Tensor[] {
  const separate = as.map((a) => up(a));
  const packed = packTensors(separate);
  separate.forEach((t) => t.dispose());
  packed.forEach((p) => (p.requiresGrad = true));
  return packed;
}

/** Max of |a - b| / (atol + rtol·|b|) over elements; NaN-aware (NaN must match NaN). */
export function closeness(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  atol: number,
  rtol: number,
): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(b[i]) || Number.isNaN(a[i])) {
      if (!(Number.isNaN(b[i]) && Number.isNaN(a[i]))) return Infinity;
      continue;
    }
    if (!Number.isFinite(b[i]) || !Number.isFinite(a[i])) {
      if (a[i] !== b[i]) return Infinity;
      continue;
    }
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i])));
  }
  return worst;
}

export function assertClose(
  what: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  atol = 1e-5,
  rtol = 1e-4,
) {
  const c = closeness(got, want, atol, rtol);
  if (!(c <= 1)) {
    const bad: string[] = [];
    for (let i = 0; i < want.length && bad.length < 6; i++) {
      if (
        !(Math.abs(got[i] - want[i]) <= atol + rtol * Math.abs(want[i])) &&
        !(Number.isNaN(got[i]) && Number.isNaN(want[i])) && got[i] !== want[i]
      ) {
        bad.push(`[${i}] got ${got[i]} want ${want[i]}`);
      }
    }
    throw new Error(`${what}: not close (worst ${c.toFixed(2)}× tolerance): ${bad.join(", ")}`);
  }
}

/** An op under test. */
export interface OpCase {
  name: string;
  inputs: Arr[];
  /** Indices of inputs that get gradients (default all). */
  grads?: number[];
  gpu: (xs: Tensor[]) => Tensor;
  ref: (xs: Arr[]) => Arr;
  /** Forward tolerance (atol, rtol). */
  fwd?: [number, number];
  /** Backward tolerance against reference finite differences. */
  bwd?: [number, number];
  /** Step of the GPU (f32) finite differences; 0 skips them. */
  gpuH?: number;
  seed?: number;
}

/** Runs the three comparisons of the module comment for one op. */
export async function checkOp(c: OpCase): Promise<void> {
  const rng = new Rng(c.seed ?? 99);
  const which = c.grads ?? c.inputs.map((_, i) => i);
  const refOut = c.ref(c.inputs);
  const w = Float64Array.from(refOut.data, () => Math.fround(rng.normal()));
  const wArr = arr(w, refOut.shape);
  const ts = c.inputs.map((a, i) => up(a, which.includes(i)));
  const out = tidy(() => {
    const y = c.gpu(ts);
    if (which.length) y.backward(up(wArr));
    return y;
  });
  const got = await readAll([out, ...which.map((i) => ts[i].grad!)]);
  out.dispose();
  assertNoGpuErrors();
  const [fa, fr] = c.fwd ?? [1e-5, 1e-4];
  assertClose(`${c.name} forward`, got[0], refOut.data, fa, fr);
  const [ba, br] = c.bwd ?? [1e-4, 1e-3];
  which.forEach((wi, k) => {
    const fd = finiteDiff(
      c.ref,
      c.inputs.map((a) => ({ data: a.data.slice(), shape: a.shape })),
      wi,
      w,
    );
    assertClose(
      `${c.name} backward (input ${wi}) vs reference finite differences`,
      got[k + 1],
      fd,
      ba,
      br,
    );
  });
  const h = c.gpuH ?? 1e-2;
  if (h > 0 && which.length) {
    // f32 finite differences of the GPU forward at a few coordinates of each input, one readback.
    const coords = which.flatMap((wi) =>
      [0, 1, 2].map(() => [wi, rng.int(c.inputs[wi].data.length)])
    );
    const wT = up(wArr);
    const sums = noGrad(() =>
      tidy(() =>
        coords.flatMap(([wi, j]) =>
          [h, -h].map((d) => {
            const xs = c.inputs.map((a, i) => {
              if (i !== wi) return up(a);
              const b = { data: a.data.slice(), shape: a.shape };
              b.data[j] += d;
              return up(b);
            });
            return c.gpu(xs).mul(wT).sum();
          })
        )
      )
    );
    const vals = await readAll(sums);
    sums.forEach((s) => s.dispose());
    wT.dispose();
    coords.forEach(([wi, j], k) => {
      const fd = (vals[2 * k][0] - vals[2 * k + 1][0]) / (2 * h);
      const an = got[which.indexOf(wi) + 1][j];
      const tol = 2e-2 * (1 + Math.abs(an)) + 5e-2 * Math.abs(an);
      if (!(Math.abs(fd - an) <= tol)) {
        throw new Error(
          `${c.name}: GPU backward ${an} vs GPU finite difference ${fd} at input ${wi}[${j}]`,
        );
      }
    });
  }
  for (const t of ts) t.dispose();
}

// Exact equality that treats NaN as equal to NaN and says which element differs.
export function assertSame(
  what: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  rtol = 1e-6,
) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    const ok = Number.isNaN(w)
      ? Number.isNaN(g)
      : Number.isFinite(w)
      ? Math.abs(g - w) <= rtol * Math.abs(w) + 1e-30
      : g === w;
    assert.ok(ok, `${what}[${i}]: got ${g}, want ${w}`);
  }
}
