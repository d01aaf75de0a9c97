import assert from "node:assert/strict";
import {
  CheckpointError,
  decodeSafetensors,
  decodeSafetensorsHeader,
  encodeSafetensors,
  type HostTensor,
} from "../src/nn/checkpoint/mod.ts";
import { Rng } from "../src/util/rng.ts";

// ---- independent minimal reader/writer, written from the format description only ----

function rawParse(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  return { n, headerText, header: JSON.parse(headerText), data: bytes.subarray(8 + n) };
}

function rawFile(header: unknown, data: Uint8Array, padTo = 8): Uint8Array {
  let text = JSON.stringify(header);
  while (new TextEncoder().encode(text).length % padTo !== 0) text += " ";
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function bytesOf(a: Float32Array | Int32Array | BigInt64Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** f32 values with the edge cases: ±0, subnormals, extremes, ±Inf, NaNs with payloads. */
function edgeFloats(rng: Rng, n: number): Float32Array {
  const bits = new Uint32Array(n);
  const special = [
    0x00000000,
    0x80000000,
    0x00000001,
    0x80000001,
    0x007fffff,
    0x807fffff,
    0x00800000,
    0x7f7fffff,
    0xff7fffff,
    0x7f800000,
    0xff800000,
    0x7fc00000,
    0x7fa12345,
    0xffc00001,
  ];
  for (let i = 0; i < n; i++) {
    bits[i] = i < special.length ? special[i] : rng.nextU32();
  }
  return new Float32Array(bits.buffer);
}

function randomShape(rng: Rng): number[] {
  const rank = rng.int(4);
  return Array.from({ length: rank }, () => rng.int(5) + (rng.int(8) === 0 ? 0 : 1));
}

function randomTensors(rng: Rng, count: number): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (let k = 0; k < count; k++) {
    const shape = k === 0 ? [33] : randomShape(rng);
    const n = shape.reduce((p, d) => p * d, 1);
    const kind = k === 0 ? 0 : rng.int(3);
    const data = kind === 0
      ? edgeFloats(rng, n)
      : kind === 1
      ? Int32Array.from({ length: n }, (_, i) => i === 0 ? -2147483648 : rng.nextU32() | 0)
      : BigInt64Array.from(
        { length: n },
        (_, i) =>
          i === 0
            ? -(2n ** 63n)
            : (BigInt(rng.nextU32()) << 32n | BigInt(rng.nextU32())) - 2n ** 63n,
      );
    out.set(`t${k}.${["w", "i", "l"][kind]}`, { shape, data });
  }
  return out;
}

Deno.test("safetensors: save→load is bitwise exact for random tensors with edge values", () => {
  const rng = new Rng(1);
  for (let trial = 0; trial < 20; trial++) {
    const tensors = randomTensors(rng, 1 + rng.int(7));
    const metadata: Record<string, string> = trial % 2
      ? { format: "pt", note: `trial ${trial} ✓` }
      : {};
    const back = decodeSafetensors(encodeSafetensors(tensors, metadata));
    assert.deepEqual(back.metadata, metadata);
    assert.deepEqual([...back.tensors.keys()].sort(), [...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const b = back.tensors.get(name)!;
      assert.deepEqual(b.shape, [...t.shape], name);
      assert.equal(b.data.constructor, t.data.constructor, name);
      assert.deepEqual(bytesOf(b.data), bytesOf(t.data), name);
    }
  }
});

Deno.test("safetensors: written files parse with an independent minimal parser", () => {
  const rng = new Rng(2);
  for (let trial = 0; trial < 20; trial++) {
    const tensors = randomTensors(rng, 1 + rng.int(7));
    const bytes = encodeSafetensors(tensors, { format: "pt" });
    const { n, headerText, header, data } = rawParse(bytes);
    assert.equal(n % 8, 0, "header padded to 8 bytes");
    assert.match(headerText, /^\{.*\} *$/s);
    assert.deepEqual(header.__metadata__, { format: "pt" });
    const sizes: Record<string, number> = { F32: 4, I32: 4, I64: 8 };
    const ranges: [number, number][] = [];
    for (const [name, t] of tensors) {
      const e = header[name];
      const dtype = t.data instanceof Float32Array
        ? "F32"
        : t.data instanceof Int32Array
        ? "I32"
        : "I64";
      assert.equal(e.dtype, dtype);
      assert.deepEqual(e.shape, [...t.shape]);
      const [b, end] = e.data_offsets;
      assert.equal(b % sizes[dtype], 0, `${name} aligned to its element size`);
      assert.deepEqual(data.subarray(b, end), bytesOf(t.data));
      ranges.push([b, end]);
    }
    ranges.sort((x, y) => x[0] - y[0]);
    let at = 0;
    for (const [b, end] of ranges) {
      assert.equal(b, at, "packed without gaps");
      at = end;
    }
    assert.equal(at, data.length);
  }
});

/** Value of a binary16 pattern by the textbook formula (float64). */
function f16Value(h: number): number {
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Value of a bfloat16 pattern by the textbook formula (float64). */
function bf16Value(h: number): number {
  const s = h >> 15 ? -1 : 1;
  const e = (h >> 7) & 255;
  const m = h & 127;
  if (e === 255) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -133 : s * (1 + m / 128) * 2 ** (e - 127);
}

Deno.test("safetensors: every F16 and BF16 bit pattern reads as its exact f32 value", () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  for (const [dtype, value] of [["F16", f16Value], ["BF16", bf16Value]] as const) {
    // Odd element count before it: the 16-bit tensor starts at an offset that is not 4-aligned.
    const pad = new Uint16Array(3);
    const file = rawFile(
      {
        pad: { dtype, shape: [3], data_offsets: [0, 6] },
        x: { dtype, shape: [256, 256], data_offsets: [6, 6 + 2 * 65536] },
      },
      new Uint8Array([...bytesOf(pad), ...bytesOf(all)]),
    );
    const t = decodeSafetensors(file).tensors.get("x")!;
    assert.equal(t.dtype, dtype);
    assert.ok(t.data instanceof Float32Array);
    const got = t.data as Float32Array;
    const gotBits = new Uint32Array(got.buffer);
    for (let h = 0; h < 65536; h++) {
      const want = value(h);
      if (Number.isNaN(want)) {
        assert.ok(Number.isNaN(got[h]), `${dtype} ${h.toString(16)} should be NaN`);
        assert.equal(gotBits[h] >>> 31, h >> 15, "NaN keeps its sign");
      } else {
        assert.ok(Object.is(got[h], want), `${dtype} ${h.toString(16)}: ${got[h]} vs ${want}`);
      }
    }
    if (dtype === "F16" && "Float16Array" in globalThis) {
      // Cross-check against the platform's own half floats where it has them.
      const F16 =
        (globalThis as unknown as { Float16Array: new (b: ArrayBuffer) => ArrayLike<number> })
          .Float16Array;
      const native = new F16(all.slice().buffer);
      for (let h = 0; h < 65536; h += 7) {
        if (!Number.isNaN(native[h])) assert.ok(Object.is(got[h], native[h]));
      }
    }
  }
});

Deno.test("safetensors: I32 and I64 tensors written by another writer read exactly", () => {
  const rng = new Rng(3);
  const i32 = Int32Array.from({ length: 7 }, () => rng.nextU32() | 0);
  const i64 = BigInt64Array.from(
    { length: 5 },
    () => BigInt.asIntN(64, BigInt(rng.nextU32()) << 33n),
  );
  const file = rawFile(
    {
      __metadata__: { a: "b" },
      a: { dtype: "I64", shape: [5], data_offsets: [0, 40] },
      b: { dtype: "I32", shape: [7, 1], data_offsets: [40, 68] },
      s: { dtype: "F32", shape: [], data_offsets: [68, 72] },
      e: { dtype: "F32", shape: [0, 4], data_offsets: [72, 72] },
    },
    new Uint8Array([...bytesOf(i64), ...bytesOf(i32), ...bytesOf(new Float32Array([2.5]))]),
  );
  const { tensors, metadata } = decodeSafetensors(file);
  assert.deepEqual(metadata, { a: "b" });
  assert.deepEqual(tensors.get("a")!.data, i64);
  assert.deepEqual(tensors.get("b")!.data, i32);
  assert.deepEqual([...tensors.get("s")!.data], [2.5]);
  assert.equal(tensors.get("e")!.data.length, 0);
});

function assertCorrupt(bytes: Uint8Array, pattern: RegExp) {
  assert.throws(
    () => decodeSafetensors(bytes, "runs/x/model.safetensors"),
    (e: unknown) => {
      assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${e}`);
      assert.ok(e.message.startsWith("runs/x/model.safetensors: "), e.message);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

Deno.test("safetensors: every truncation of a valid file is one clear error", () => {
  const good = encodeSafetensors(randomTensors(new Rng(4), 3), { format: "pt" });
  for (let len = 0; len < good.length; len++) {
    assertCorrupt(good.slice(0, len), /truncated|not JSON|not valid UTF-8/);
  }
});

Deno.test("safetensors: corrupt headers name the problem", () => {
  const d = new Uint8Array(16);
  const entry = (dtype: string, shape: number[], offsets: unknown) => ({
    dtype,
    shape,
    data_offsets: offsets,
  });
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
  assertCorrupt(huge, /header length 1099511627776 exceeds/);
  const notJson = rawFile({ a: entry("F32", [4], [0, 16]) }, d);
  notJson[8] = "x".charCodeAt(0);
  assertCorrupt(notJson, /header is not JSON/);
  const badUtf8 = rawFile({ a: entry("F32", [4], [0, 16]) }, d);
  badUtf8[12] = 0xff;
  assertCorrupt(badUtf8, /not valid UTF-8/);
  assertCorrupt(rawFile([1, 2], d), /not a JSON object/);
  assertCorrupt(
    rawFile({ a: entry("F64", [2], [0, 16]) }, d),
    /'a' has unsupported dtype "F64" \(supported: F32/,
  );
  assertCorrupt(
    rawFile({ a: entry("F32", [4], [0, 20]) }, d),
    /'a' data_offsets \[0, 20\] out of range.*16 bytes/,
  );
  assertCorrupt(rawFile({ a: entry("F32", [4], [8, 4]) }, d), /out of range/);
  assertCorrupt(rawFile({ a: entry("F32", [4], [0]) }, d), /is not \[begin, end\]/);
  assertCorrupt(
    rawFile({ a: entry("F32", [3], [0, 16]) }, d),
    /shape \[3\] of F32 needs 12 bytes but .* span 16/,
  );
  assertCorrupt(rawFile({ a: entry("I64", [4], [0, 16]) }, d), /needs 32 bytes/);
  assertCorrupt(rawFile({ a: entry("F32", [-1], [0, 16]) }, d), /shape \[-1\] is not a list/);
  assertCorrupt(
    rawFile({ a: entry("F32", [3], [0, 12]), b: entry("F32", [2], [8, 16]) }, d),
    /'a' \[0,12\] and 'b' \[8,16\] overlap/,
  );
  assertCorrupt(
    rawFile({ a: entry("F32", [2], [0, 8]) }, d),
    /8 of the 16 data bytes belong to no tensor/,
  );
  assertCorrupt(rawFile({ a: "x" }, d), /'a' entry is not an object/);
  assertCorrupt(
    rawFile({ __metadata__: { k: 1 } }, new Uint8Array()),
    /__metadata__ 'k' is not a string/,
  );
});

Deno.test("safetensors: bad tensors are refused when writing", () => {
  const f = (shape: number[], n: number): HostTensor => ({ shape, data: new Float32Array(n) });
  assert.throws(
    () => encodeSafetensors({ a: f([2, 3], 5) }),
    /'a' shape \[2,3\] has 6 elements but its data has 5/,
  );
  assert.throws(() => encodeSafetensors({ __metadata__: f([1], 1) }), /reserved/);
  assert.throws(() => encodeSafetensors({ a: f([1.5], 1) }), /not a list of integers/);
  assert.throws(
    () =>
      encodeSafetensors({
        a: { shape: [1], data: new Float64Array(1) as unknown as Float32Array },
      }),
    /Float32Array, Int32Array or BigInt64Array/,
  );
  assert.throws(
    () => encodeSafetensors({}, { n: 3 as unknown as string }),
    /metadata 'n' must be a string/,
  );
  // An empty file is still a valid file.
  assert.equal(decodeSafetensors(encodeSafetensors({})).tensors.size, 0);
  assert.equal(decodeSafetensorsHeader(encodeSafetensors({})).dataStart % 8, 0);
});
