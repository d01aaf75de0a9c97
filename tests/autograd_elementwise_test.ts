import { ops } from "../src/autograd/mod.ts";
import { binaryRef, mapN, reduceRef, unaryRef } from "../src/autograd/reference.ts";
import { arr } from "../src/autograd/reference.ts";
import { Rng } from "../src/util/rng.ts";
import { checkOp, randArr, setup } from "./autograd_util.ts";

const rng = new Rng(2024);

Deno.test("unary ops: forward vs float64, backward vs finite differences (odd sizes, vec4 tails)", async () => {
  await setup();
  const cases: Array<[string, number, number, number, number]> = [
    // name, a, b, input scale, input shift
    ["neg", 0, 0, 1, 0],
    ["exp", 0, 0, 1, 0],
    ["log", 0, 0, 0.3, 2],
    ["sqrt", 0, 0, 0.3, 2],
    ["silu", 0, 0, 2, 0],
    ["gelu", 0, 0, 2, 0],
    ["sigmoid", 0, 0, 2, 0],
    ["affine", 1.5, -0.25, 1, 0],
    ["pow", 3, 0, 1, 0],
    ["pow", 2, 0, 1, 0],
    ["pow", 0.5, 0, 0.2, 2],
  ];
  for (const [name, a, b, scale, shift] of cases) {
    const shape = [1 + rng.int(4), 1 + rng.int(7)];
    const fn =
      (ops as unknown as Record<string, (x: unknown, a?: number, b?: number) => never>)[name];
    await checkOp({
      name,
      inputs: [randArr(rng, shape, scale, shift)],
      gpu: (
        [x],
      ) => (name === "affine" ? ops.affine(x, a, b) : name === "pow" ? ops.pow(x, a) : fn(x)),
      ref: ([x]) => mapN((v) => unaryRef[name](v, a, b), x),
    });
  }
  // clamp and relu away from their kinks (finite differences are undefined there)
  const x = randArr(rng, [3, 5]);
  x.data.forEach((
    v,
    i,
  ) => (x.data[i] = Math.abs(v) < 0.05 ? 0.3 : Math.abs(v - 0.5) < 0.05 ? 0.7 : v));
  await checkOp({
    name: "relu",
    inputs: [x],
    gpu: ([t]) => ops.relu(t),
    ref: ([t]) => mapN((v) => Math.max(v, 0), t),
  });
  await checkOp({
    name: "clamp",
    inputs: [x],
    gpu: ([t]) => ops.clamp(t, -0.5, 0.5),
    ref: ([t]) => mapN((v) => Math.min(Math.max(v, -0.5), 0.5), t),
    gpuH: 1e-3,
  });
});

Deno.test("binary ops with broadcasting, strided views and ties", async () => {
  await setup();
  const shapes: Array<[number[], number[]]> = [
    [[3, 5], [3, 5]],
    [[3, 8], [8]],
    [[2, 3, 4], [1, 4]],
    [[3, 5], [1]],
    [[2, 3, 4], [3, 1]],
    [[4], [2, 3, 4]],
    [[2, 1, 3], [1, 5, 1]],
    [[], [3, 2]],
  ];
  for (const name of ["add", "sub", "mul", "div", "maximum", "minimum"]) {
    for (const [sa, sb] of shapes) {
      const a = randArr(rng, sa);
      const b = randArr(rng, sb, 1, name === "div" ? 3 : 0);
      if (name === "maximum" || name === "minimum") {
        // exact ties share the gradient; central differences give 1/2 each at a tie as well
        if (a.data.length === b.data.length) a.data[0] = b.data[0];
      }
      const fn = (ops as unknown as Record<string, (x: unknown, y: unknown) => never>)[name];
      await checkOp({
        name: `${name} ${JSON.stringify(sa)}·${JSON.stringify(sb)}`,
        inputs: [a, b],
        gpu: ([x, y]) => fn(x, y),
        ref: ([x, y]) => mapN(binaryRef[name], x, y),
        gpuH: name.endsWith("imum") ? 0 : 1e-2,
      });
    }
  }
  await checkOp({
    name: "pow(tensor, tensor)",
    inputs: [randArr(rng, [2, 3], 0.3, 2), randArr(rng, [3], 0.5, 1)],
    gpu: ([x, y]) => ops.pow(x, y),
    ref: ([x, y]) => mapN(Math.pow, x, y),
  });
  await checkOp({
    name: "mul of transposed view",
    inputs: [randArr(rng, [3, 4]), randArr(rng, [4, 3])],
    gpu: ([x, y]) => ops.mul(ops.transpose(x), y),
    ref: ([x, y]) =>
      mapN((p, q) => p * q, {
        data: Float64Array.from({ length: 12 }, (_, i) => x.data[(i % 3) * 4 + Math.floor(i / 3)]),
        shape: [4, 3],
      }, y),
  });
});

Deno.test("where with f32 and i32 conditions", async () => {
  await setup();
  const c = arr([1, 0, 0, 1, 1, 0], [2, 3]);
  await checkOp({
    name: "where f32 cond",
    inputs: [c, randArr(rng, [2, 3]), randArr(rng, [3])],
    grads: [1, 2],
    gpu: ([k, a, b]) => ops.where(k, a, b),
    ref: ([k, a, b]) => mapN((q, x, y) => (q !== 0 ? x : y), k, a, b),
  });
  const { tensor } = await import("../src/tensor/mod.ts");
  const ci = tensor(new Int32Array([0, 5, -1]), [3]);
  await checkOp({
    name: "where i32 cond",
    inputs: [randArr(rng, [2, 3]), randArr(rng, [2, 1])],
    gpu: ([a, b]) => ops.where(ci, a, b),
    ref: ([a, b]) => mapN((x, y, q) => (q !== 0 ? x : y), a, b, arr([0, 5, -1], [3])),
  });
});

Deno.test("sum, mean, max over axes (keepDims, ties)", async () => {
  await setup();
  const x = randArr(rng, [3, 4, 5]);
  for (const axes of [undefined, [0], [1], [2], [0, 2], [-1]]) {
    for (const keep of [false, true]) {
      await checkOp({
        name: `sum ${axes} ${keep}`,
        inputs: [x],
        gpu: ([t]) => ops.sum(t, axes, keep),
        ref: ([t]) => reduceRef(t, axes, "sum", keep),
        fwd: [1e-5, 1e-5],
      });
      await checkOp({
        name: `mean ${axes} ${keep}`,
        inputs: [x],
        gpu: ([t]) => ops.mean(t, axes, keep),
        ref: ([t]) => reduceRef(t, axes, "mean", keep),
        fwd: [1e-5, 1e-5],
      });
    }
  }
  const y = randArr(rng, [4, 6]);
  y.data[7] = y.data[8] = 9; // a tie of two maxima in row 1
  for (const axes of [[1], [0], undefined]) {
    await checkOp({
      name: `max ${axes}`,
      inputs: [y],
      gpu: ([t]) => ops.max(t, axes),
      ref: ([t]) => reduceRef(t, axes, "max"),
      gpuH: 0,
    });
  }
  // leading-axis sums take the chunked column path (here 3 rounds: 9000 → 141 → 3 → 1 rows)
  const tall = randArr(rng, [9000, 3]);
  await checkOp({
    name: "sum over 9000 rows",
    inputs: [tall],
    grads: [],
    gpu: ([t]) => ops.sum(t, 0),
    ref: ([t]) => reduceRef(t, [0], "sum"),
    fwd: [1e-3, 1e-4],
    gpuH: 0,
  });
  await checkOp({
    name: "mean over leading axes",
    inputs: [randArr(rng, [70, 3, 5])],
    gpu: ([t]) => ops.mean(t, [0, 1]),
    ref: ([t]) => reduceRef(t, [0, 1], "mean"),
    gpuH: 0,
  });
  const big = randArr(rng, [1000]);
  await checkOp({
    name: "sum over 1000 (tree)",
    inputs: [big],
    gpu: ([t]) => ops.sum(t),
    ref: ([t]) => reduceRef(t, undefined, "sum"),
    fwd: [1e-4, 1e-5],
    gpuH: 0,
  });
});
