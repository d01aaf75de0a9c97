// The reduction fast paths of kernels/ops_reduce.wgsl against the float64 reference: contiguous
// rows (`rows4` with vec4 loads, `rows` with scalar loads for odd lengths or offsets), the
// two-pass long rows, the general strided path, and the tiled column sums (`colsum4`, `colsum`)
// with their chunk folds. Each shape is picked to land on one path; NaN and -inf rows included.
import { ops } from "../src/autograd/mod.ts";
import { type Arr, reduceRef, sliceRef } from "../src/autograd/reference.ts";
import { readAll, type Tensor, tidy } from "../src/tensor/mod.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, assertNoGpuErrors, assertSame, randArr, setup, up } from "./autograd_util.ts";

const rng = new Rng(41);

interface Case {
  name: string;
  x: Arr;
  /** The view the op reduces (default x itself) and its reference. */
  view?: [(t: Tensor) => Tensor, (a: Arr) => Arr];
  axes: number[];
  op: "sum" | "mean" | "max";
}

async function runCases(cases: Case[]): Promise<void> {
  const inputs = cases.map((c) => up(c.x));
  const outs = tidy(() =>
    cases.map((c, i) => {
      const v = c.view ? c.view[0](inputs[i]) : inputs[i];
      return ops[c.op](v, c.axes);
    })
  );
  const got = await readAll(outs);
  assertNoGpuErrors();
  cases.forEach((c, i) => {
    const want = reduceRef(c.view ? c.view[1](c.x) : c.x, c.axes, c.op);
    if (c.op === "max") assertSame(c.name, got[i], want.data);
    else assertClose(c.name, got[i], want.data, 1e-4, 1e-5);
  });
  for (const t of [...outs, ...inputs]) t.dispose();
}

Deno.test("row reductions: vec4 and scalar rows, long rows in parts, views, strided fallback", async () => {
  await setup();
  const sliceView = (axis: number, s: number, e: number): Case["view"] => [
    (t) => ops.slice(t, axis, s, e),
    (a) => sliceRef(a, axis, s, e),
  ];
  await runCases([
    // 1025 vec4: one trip of four vec4 loads per thread, then a tail
    { name: "rows4 sum [3, 4100]", x: randArr(rng, [3, 4100]), axes: [1], op: "sum" },
    { name: "rows4 mean [1, 16]", x: randArr(rng, [1, 16]), axes: [1], op: "mean" },
    { name: "rows sum [3, 1030]", x: randArr(rng, [3, 1030]), axes: [1], op: "sum" },
    { name: "rows sum [4, 5]", x: randArr(rng, [4, 5]), axes: [1], op: "sum" },
    { name: "rows4 over two axes", x: randArr(rng, [3, 4, 8]), axes: [1, 2], op: "sum" },
    { name: "rows max [2, 3, 9]", x: randArr(rng, [2, 3, 9]), axes: [2], op: "max" },
    { name: "rows4 max [5, 2052]", x: randArr(rng, [5, 2052]), axes: [1], op: "max" },
    // long rows: more than one part (16,384) per output, then a pass over the partials
    { name: "rows4 long [2, 40000]", x: randArr(rng, [2, 40000]), axes: [1], op: "sum" },
    { name: "rows long [2, 33001]", x: randArr(rng, [2, 33001]), axes: [1], op: "mean" },
    { name: "rows4 long max [1, 65540]", x: randArr(rng, [1, 65540]), axes: [1], op: "max" },
    { name: "sum of all [70000]", x: randArr(rng, [70000]), axes: [0], op: "sum" },
    // views: rows that start at an offset, kept axes with a stride
    {
      name: "rows4 of a column slice (offset 4, stride 12)",
      x: randArr(rng, [3, 12]),
      view: sliceView(1, 4, 12),
      axes: [1],
      op: "sum",
    },
    {
      name: "rows of a column slice (offset 1)",
      x: randArr(rng, [3, 12]),
      view: sliceView(1, 1, 9),
      axes: [1],
      op: "max",
    },
    {
      name: "rows of a row slice (offset 9)",
      x: randArr(rng, [4, 9]),
      view: sliceView(0, 1, 4),
      axes: [1],
      op: "sum",
    },
    // not trailing, or not contiguous: the general strided path
    { name: "main: middle axis", x: randArr(rng, [3, 5, 4]), axes: [1], op: "sum" },
    {
      name: "main: rows of a transpose",
      x: randArr(rng, [6, 8]),
      view: [(t) => ops.transpose(t), (a) => ({
        data: Float64Array.from({ length: 48 }, (_, i) => a.data[(i % 6) * 8 + Math.floor(i / 6)]),
        shape: [8, 6],
      })],
      axes: [1],
      op: "max",
    },
  ]);
});

Deno.test("row reductions: NaN and -inf rows on the vec4 and scalar paths", async () => {
  await setup();
  const cases: Case[] = [];
  for (const n of [8, 1028, 7, 1031]) {
    const x = randArr(rng, [4, n]);
    x.data[3] = NaN; // row 0: NaN among finite values
    for (let i = 0; i < n; i++) x.data[n + i] = -Infinity; // row 1: all -inf
    x.data[2 * n + n - 1] = -Infinity; // row 2: one -inf at the end
    x.data[3 * n + n - 2] = Infinity; // row 3: +inf
    for (const op of ["sum", "max"] as const) {
      cases.push({ name: `${op} [4, ${n}] with NaN/-inf`, x, axes: [1], op });
    }
  }
  await runCases(cases);
});

Deno.test("column sums: vec4 and scalar strips, partial strips, chunk folds, leading axes", async () => {
  await setup();
  await runCases([
    { name: "colsum4 [300, 68]: two chunks", x: randArr(rng, [300, 68]), axes: [0], op: "sum" },
    { name: "colsum4 [1000, 8]", x: randArr(rng, [1000, 8]), axes: [0], op: "mean" },
    { name: "colsum4 [20, 132]: partial strip", x: randArr(rng, [20, 132]), axes: [0], op: "sum" },
    { name: "colsum [5, 6]", x: randArr(rng, [5, 6]), axes: [0], op: "sum" },
    { name: "colsum [600, 70]", x: randArr(rng, [600, 70]), axes: [0], op: "sum" },
    { name: "colsum [3, 130]: partial strip", x: randArr(rng, [3, 130]), axes: [0], op: "sum" },
    {
      name: "colsum4 over two leading axes",
      x: randArr(rng, [3, 100, 8]),
      axes: [0, 1],
      op: "sum",
    },
    { name: "colsum4 [2, 4]", x: randArr(rng, [2, 4]), axes: [0], op: "sum" },
  ]);
  // exact sums of small integers: the fold order cannot blur a dropped or doubled row
  const R = 70_000, C = 12;
  const ints: Arr = {
    data: Float64Array.from({ length: R * C }, (_, i) => ((i * 7) % 13) - 6),
    shape: [R, C],
  };
  const t = up(ints);
  const s = tidy(() => ops.sum(t, 0));
  const [got] = await readAll([s]);
  assertNoGpuErrors();
  assertSame("integer column sums [70000, 12]", got, reduceRef(ints, [0], "sum").data);
  s.dispose();
  t.dispose();
});
