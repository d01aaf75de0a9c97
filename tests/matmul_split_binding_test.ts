// A matmul whose operand spans more than one storage binding (a 151,936-token classifier) is
// recorded in blocks (src/tensor/matmul/blocked.ts). Forced here at small shapes by a small
// `maxBindingBytes`: every block bound within it at an aligned offset, the product against the
// float64 reference under checkMatmul's bound, every layout that needs a different cut (N for
// Wᵀ, K for a plain big B or a transposed big A, M for a big C or A, two at once), odd sizes,
// blocks that end mid-way, accumulation, the skinny kernel in blocks (vec4 and scalar), operands
// at offsets of one shared buffer; and the errors for what cannot be split.
import assert from "node:assert/strict";
import {
  type Binding,
  ComputeBatch,
  createStorageBuffer,
  type Dispatch,
  getGpu,
  readBuffers,
} from "../src/gpu/mod.ts";
import { writeBuffer } from "../src/gpu/buffers.ts";
import { Rng } from "../src/util/rng.ts";
import {
  checkMatmul,
  encodeMatmul,
  type MatmulShape,
  type MatmulVariant,
  planMatmul,
} from "../src/tensor/matmul/mod.ts";
import { matmulBlocks } from "../src/tensor/matmul/blocked.ts";

interface Case extends MatmulShape {
  limit: number;
  variant?: MatmulVariant;
  /** Byte offsets of A, B, C; with `shared`, all three in one buffer at those offsets. */
  offsets?: [number, number, number];
  shared?: boolean;
  /** Least number of dispatches expected (the split happened). */
  minPieces: number;
}

function isSlice(b: Binding): b is { buffer: GPUBuffer; offset?: number; size?: number } {
  return typeof b === "object" && b !== null && "buffer" in b && b.buffer instanceof GPUBuffer;
}

// Records the case into a batch, checking every dispatch's storage bindings as it goes.
async function run(cs: Case, seed: number) {
  const gpu = await getGpu();
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const rng = new Rng(seed);
  const { M, N, K } = cs;
  const a = Float32Array.from({ length: M * K }, () => rng.normal());
  const b = Float32Array.from({ length: K * N }, () => rng.normal());
  const cBefore = Float32Array.from({ length: M * N }, () => rng.normal());
  const [oa, ob, oc] = cs.offsets ?? [0, 0, 0];
  const round = (n: number) => Math.ceil(n / align) * align;
  let bufs: GPUBuffer[];
  let offs: number[];
  if (cs.shared) {
    const ea = round(oa + a.byteLength), eb = round(ea + ob + b.byteLength);
    const buf = createStorageBuffer(gpu, eb + oc + cBefore.byteLength + 64);
    bufs = [buf, buf, buf];
    offs = [oa, ea + ob, eb + oc];
  } else {
    bufs = [a, b, cBefore].map((x, i) =>
      createStorageBuffer(gpu, [oa, ob, oc][i] + x.byteLength + 64)
    );
    offs = [oa, ob, oc];
  }
  [a, b, cBefore].forEach((x, i) => writeBuffer(gpu, bufs[i], x, offs[i]));
  const batch = new ComputeBatch(gpu);
  const seen: Dispatch[] = [];
  const inner = batch.dispatch.bind(batch);
  batch.dispatch = (d: Dispatch) => {
    seen.push(d);
    return inner(d);
  };
  encodeMatmul(batch, gpu, {
    ...cs,
    a: { buffer: bufs[0], offset: offs[0] },
    b: { buffer: bufs[1], offset: offs[1] },
    c: { buffer: bufs[2], offset: offs[2] },
    maxBindingBytes: cs.limit,
  });
  batch.submit();
  const [out] = await readBuffers(gpu, [{
    buffer: bufs[2],
    offset: offs[2],
    size: cBefore.byteLength,
  }]);
  new Set(bufs).forEach((x) => x.destroy());
  return { got: new Float32Array(out), a, b, cBefore, seen, align };
}

const L = 16384; // 4096 floats per binding

const CASES: Array<[string, Case]> = [
  // logits = x·Wᵀ: W [N, K] cut along N; C [40, 301] also over, cut along M
  ["classifier NT, B and C over", { M: 40, N: 301, K: 37, transB: true, limit: L, minPieces: 6 }],
  ["classifier NT, few rows (skinny in blocks, scalar)", {
    M: 5,
    N: 301,
    K: 37,
    transB: true,
    limit: L,
    variant: "skinny",
    minPieces: 3,
  }],
  ["classifier NT, skinny vec4 loads in blocks", {
    M: 7,
    N: 520,
    K: 64,
    transB: true,
    limit: L,
    variant: "skinny",
    minPieces: 9,
  }],
  ["classifier NT, B and C over, tiled", {
    M: 40,
    N: 301,
    K: 37,
    transB: true,
    limit: L,
    variant: "tiled",
    minPieces: 6,
  }],
  // C [200, 40] over: blocks of 72, 72 and 56 rows (tiled, tiled, skinny)
  ["C over, blocks of rows either side of 64", {
    M: 200,
    N: 40,
    K: 37,
    transB: true,
    limit: L,
    minPieces: 3,
  }],
  ["dX = dY·W, plain B over (K cut), tiled", {
    M: 9,
    N: 37,
    K: 301,
    limit: L,
    variant: "tiled",
    minPieces: 3,
  }],
  // dX = dY·W: W [K, N] plain, cut along K (accumulating into C), dY [9, 301] fits
  ["dX = dY·W, plain B over (K cut)", { M: 9, N: 37, K: 301, limit: L, minPieces: 3 }],
  ["dX += dY·W, accumulate, skinny", {
    M: 9,
    N: 37,
    K: 301,
    accumulate: true,
    limit: L,
    variant: "skinny",
    minPieces: 3,
  }],
  // both A [40, 301] and B over: M and K cut
  ["plain A and B over (M and K cut)", { M: 40, N: 37, K: 301, limit: L, minPieces: 6 }],
  // dW += dYᵀ·x: C [301, 37] over (M cut), A stored [9, 301] read transposed
  ["dW += dYᵀ·x, C over (M cut)", {
    M: 301,
    N: 37,
    K: 9,
    transA: true,
    accumulate: true,
    limit: L,
    minPieces: 3,
  }],
  // A stored [50, 301] transposed and over: K cut
  ["transposed A over (K cut)", { M: 301, N: 5, K: 50, transA: true, limit: L, minPieces: 4 }],
  ["TT, everything odd", {
    M: 33,
    N: 203,
    K: 45,
    transA: true,
    transB: true,
    limit: 8192,
    minPieces: 3,
  }],
  ["operands at offsets of one shared buffer (aliased kernel)", {
    M: 12,
    N: 301,
    K: 37,
    transB: true,
    limit: L,
    offsets: [256, 512, 768],
    shared: true,
    minPieces: 3,
  }],
];

Deno.test("a matmul over one binding is computed in blocks that each fit, matching float64", async () => {
  let worst = 0, worstErr = 0;
  const kernels = new Set<string>();
  for (const [i, [name, cs]] of CASES.entries()) {
    const r = await run(cs, 10 + i);
    const check = checkMatmul(r.got, r.a, r.b, r.cBefore, cs);
    assert.ok(check.ok, `${name}: error/bound ${check.maxRatio} at ${check.worstIndex}`);
    worst = Math.max(worst, check.maxRatio);
    worstErr = Math.max(worstErr, check.maxError);
    assert.ok(r.seen.length >= cs.minPieces, `${name}: ${r.seen.length} dispatches`);
    for (const d of r.seen) {
      const name0 = d.kernel.name;
      // unforced: skinny for blocks of at most 64 rows (A not transposed), on any adapter
      const rows = (d.bindings.find((b) => b instanceof Uint32Array) as Uint32Array)[0];
      const skinny = cs.variant === "skinny" ||
        (cs.variant === undefined && !cs.transA && rows <= 64);
      const want = skinny ? /^matmul_skinny/ : /^matmul_tiled/;
      if (name.startsWith("C over, blocks of rows either side")) kernels.add(name0.split("_")[1]);
      assert.match(name0, want, `${name}: kernel ${name0}`);
      if (cs.shared) assert.match(name0, /\+aliased$/, `${name}: shared buffer needs aliased`);
      for (const b of d.bindings.filter(isSlice)) {
        assert.ok((b.size ?? Infinity) <= cs.limit, `${name}: a binding of ${b.size} bytes`);
        assert.equal((b.offset ?? 0) % r.align, 0, `${name}: offset ${b.offset}`);
      }
    }
  }
  console.log(
    `split matmul: worst error/bound ${worst.toFixed(3)}, max error ${worstErr.toExponential(2)}`,
  );
});

Deno.test("matmulBlocks: null when everything fits, the cut dimension, and equal blocks", async () => {
  const gpu = await getGpu();
  const bufs = [0, 1, 2].map(() => createStorageBuffer(gpu, 4 * 40_000));
  const [a, b, c] = bufs.map((buffer) => ({ buffer }));
  const plan = (p: Partial<Case> & { prologueA?: "swiglu" }) =>
    planMatmul(gpu, { a, b, c, M: 1, N: 1, K: 1, ...p, maxBindingBytes: p.limit ?? L });
  assert.equal(matmulBlocks(plan({ M: 8, N: 100, K: 40, transB: true }), 32), null);
  // B [301, 37] in 3 blocks of ≤ 110 rows, equalised to 104 (a multiple of 8); C fits
  assert.deepEqual(matmulBlocks(plan({ M: 5, N: 301, K: 37, transB: true }), 32), {
    M: 5,
    N: 104,
    K: 37,
  });
  // the same with 256-byte alignment: blocks of 64 rows
  assert.deepEqual(matmulBlocks(plan({ M: 5, N: 301, K: 37, transB: true }), 256), {
    M: 5,
    N: 64,
    K: 37,
  });
  // plain B over: K cut
  assert.equal(matmulBlocks(plan({ M: 9, N: 37, K: 301 }), 32)?.K, 104);
  // batched over: refused, naming it
  assert.throws(
    () => matmulBlocks(plan({ M: 40, N: 301, K: 37, batchCount: 2, strideA: 0 }), 32),
    /batched product .*only unbatched products are split/,
  );
  // one row of C over the limit: cannot be split
  assert.throws(
    () => matmulBlocks(plan({ M: 2, N: 5000, K: 3 }), 32),
    /cannot be split into blocks of one storage binding/,
  );
  // a prologue reads whole rows of A: no K cut
  assert.throws(
    () => matmulBlocks(plan({ M: 4, N: 37, K: 301, prologueA: "swiglu" }), 32),
    /needs K split, and the swiglu prologue reads whole rows of A/,
  );
  assert.throws(() => plan({ M: 2, N: 2, K: 2, limit: 100 }), /maxBindingBytes 100 must be/);
  bufs.forEach((x) => x.destroy());
});
