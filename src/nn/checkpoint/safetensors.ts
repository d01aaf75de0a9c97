/**
 * The safetensors format in plain TypeScript (no dependencies, no file system: see `fs.ts`).
 *
 * Layout: an 8-byte little-endian unsigned header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}`, then
 * the data section: each tensor's elements, little-endian, row-major, at `[begin, end)` relative to
 * the start of the data section. Tensors are packed without gaps or overlap.
 *
 * Decoding checks everything a corrupt or truncated file can get wrong and reports the first
 * problem as one `CheckpointError` naming the file. Encoding pads the header with spaces to a
 * multiple of 8 bytes and orders tensors by element size (largest first, otherwise as given) so
 * that every tensor's data is aligned to its element size, as the reference writer does.
 *
 * @module
 */
import {
  bf16BitsToF32Bits,
  DTYPE_SIZE,
  f16BitsToF32Bits,
  f32ArrayTo16Bits,
  FLOAT_DTYPES,
  type FloatDType,
  isDType,
  isFloatDType,
  type SafetensorsDType,
} from "./dtype.ts";
import { CheckpointError } from "./fs.ts";

/** Element storage: F32 (and F16/BF16 after conversion), I32, I64. */
export type TensorData = Float32Array | Int32Array | BigInt64Array;

/** A tensor to write: row-major `data` of `shape`; the dtype follows the array type. */
export interface HostTensor {
  /** Dimensions, outermost first; `[]` is a scalar. */
  shape: readonly number[];
  /** Row-major elements; `data.length` must equal the product of `shape`. */
  data: TensorData;
}

/** A tensor read from a file: `dtype` is the stored type (F16/BF16 arrive as Float32Array). */
export interface LoadedTensor extends HostTensor {
  /** The dtype in the file. */
  dtype: SafetensorsDType;
}

/** One header entry, as stored. */
export interface HeaderEntry {
  /** Stored element type. */
  dtype: SafetensorsDType;
  /** Dimensions. */
  shape: number[];
  /** `[begin, end)` byte range relative to the start of the data section. */
  data_offsets: [number, number];
}

/** A parsed and validated header. */
export interface SafetensorsHeader {
  /** Tensor entries in file order. */
  entries: Map<string, HeaderEntry>;
  /** The `__metadata__` map (empty when absent). */
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

/** The reference implementation's limit on the header size; larger means a corrupt length. */
export const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function dtypeOf(data: TensorData): SafetensorsDType {
  if (data instanceof Float32Array) return "F32";
  if (data instanceof Int32Array) return "I32";
  if (data instanceof BigInt64Array) return "I64";
  throw new TypeError("tensor data must be a Float32Array, Int32Array or BigInt64Array");
}

function numel(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

function isShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) &&
    shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0);
}

/** Options of `encodeSafetensors`. */
export interface SafetensorsEncodeOptions {
  /**
   * How float tensors are stored: F32 (default, exact), BF16 or F16 (rounded to nearest, ties to
   * even; F16 overflows to ±Inf past 65504). Integer tensors are written as they are.
   */
  floatDType?: FloatDType;
}

/** Checks `options.floatDType`; `where` names the caller in the error. */
export function checkFloatDType(value: unknown, option: string, where: string): FloatDType {
  if (value === undefined) return "F32";
  if (!isFloatDType(value)) {
    throw new RangeError(
      `${where}: option ${option} must be ${FLOAT_DTYPES.map((d) => `"${d}"`).join(", ")}, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return value;
}

/**
 * Bytes `t`'s data takes in a file whose float tensors are stored as `floatDType` (the header
 * aside): what `saveCheckpoint` sizes its shards by, as transformers does.
 */
export function storedByteLength(t: HostTensor, floatDType: FloatDType = "F32"): number {
  const dtype = dtypeOf(t.data);
  return t.data.length * DTYPE_SIZE[dtype === "F32" ? floatDType : dtype];
}

/**
 * Checks that `t` can be written under `name`: a name that is neither empty nor reserved, a shape
 * of integers >= 0 whose product is the data's length, and data of a supported array type.
 * Returns the dtype the array type gives; throws a RangeError or TypeError naming the tensor.
 */
export function checkHostTensor(name: string, t: HostTensor): SafetensorsDType {
  if (name === "" || name === "__metadata__") {
    throw new RangeError(`tensor name '${name}' is reserved or empty`);
  }
  if (!isShape(t.shape)) {
    throw new RangeError(
      `tensor '${name}' shape ${JSON.stringify(t.shape)} is not a list of integers >= 0`,
    );
  }
  const dtype = dtypeOf(t.data);
  if (numel(t.shape) !== t.data.length) {
    throw new RangeError(
      `tensor '${name}' shape [${t.shape}] has ${
        numel(t.shape)
      } elements but its data has ${t.data.length}`,
    );
  }
  return dtype;
}

/** The little-endian bytes of `data` (a view when the host is little-endian). */
function littleEndianBytes(data: TensorData | Uint16Array): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN) return view;
  const size = data.BYTES_PER_ELEMENT;
  const out = new Uint8Array(view.length);
  for (let i = 0; i < view.length; i += size) {
    for (let k = 0; k < size; k++) out[i + k] = view[i + size - 1 - k];
  }
  return out;
}

/**
 * The bytes of a safetensors file holding `tensors` (in order, except that larger element types
 * go first) and `metadata`, float tensors stored as `options.floatDType` (default F32).
 *
 * @example
 * ```ts
 * const w = { shape: [2, 3], data: new Float32Array(6) };
 * const bytes = encodeSafetensors(new Map([["w", w]]), { format: "pt" }, { floatDType: "BF16" });
 * ```
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, HostTensor> | Readonly<Record<string, HostTensor>>,
  metadata: Readonly<Record<string, string>> = {},
  options: SafetensorsEncodeOptions = {},
): Uint8Array {
  const floatDType = checkFloatDType(options.floatDType, "floatDType", "encodeSafetensors");
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(`metadata '${k}' must be a string, got ${typeof v}`);
      }
    }
    header.__metadata__ = { ...metadata };
  }
  const items = list.map(([name, t]) => {
    const stored = checkHostTensor(name, t);
    const dtype = stored === "F32" ? floatDType : stored;
    return {
      name,
      dtype,
      shape: [...t.shape],
      data: t.data,
      size: t.data.length * DTYPE_SIZE[dtype],
    };
  });
  // Stable sort, largest element first: every offset stays a multiple of its element size.
  items.sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype]);
  let offset = 0;
  for (const it of items) {
    header[it.name] = {
      dtype: it.dtype,
      shape: it.shape,
      data_offsets: [offset, offset + it.size],
    };
    offset += it.size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const it of items) {
    if (it.dtype === "BF16" || it.dtype === "F16") {
      // Converted straight into the file's bytes (at an even offset): no second copy of the data.
      const f32 = it.data as Float32Array;
      if (LITTLE_ENDIAN) {
        f32ArrayTo16Bits(f32, it.dtype, new Uint16Array(out.buffer, at, f32.length));
      } else out.set(littleEndianBytes(f32ArrayTo16Bits(f32, it.dtype)), at);
    } else out.set(littleEndianBytes(it.data), at);
    at += it.size;
  }
  return out;
}

/**
 * Parses and validates the header of a safetensors file; `file` names it in errors.
 * Throws `CheckpointError` on a short file, a header length past the end, a header that is not a
 * JSON object, an unknown dtype, a malformed shape, offsets out of range, overlapping or not
 * covering the data section, or a byte size that does not match shape × dtype.
 *
 * `bytes` may be the whole file or only its start (the length prefix and the header) with the
 * file's size as `fileLength`: how a checkpoint is read without reading its data.
 */
export function decodeSafetensorsHeader(
  bytes: Uint8Array,
  file = "<memory>",
  fileLength = bytes.length,
): SafetensorsHeader {
  const fail = (problem: string): never => {
    throw new CheckpointError(file, problem);
  };
  if (fileLength < 8 || bytes.length < 8) {
    fail(`file is ${fileLength} bytes, too short for the 8-byte header length (truncated?)`);
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt length prefix?)`);
  }
  const headerLength = Number(n);
  if (8 + headerLength > fileLength) {
    fail(
      `header length ${headerLength} runs past the end of the file (${fileLength - 8} bytes ` +
        `follow the length prefix; truncated?)`,
    );
  }
  if (8 + headerLength > bytes.length) {
    throw new RangeError(`decodeSafetensorsHeader: ${file}: the header's bytes were not all given`);
  }
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    fail("header is not valid UTF-8");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    fail(`header is not JSON (${e instanceof Error ? e.message : e})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    fail("header is not a JSON object");
  }
  const dataStart = 8 + headerLength;
  const dataLength = fileLength - dataStart;
  const entries = new Map<string, HeaderEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        fail("__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__ '${k}' is not a string`);
      }
      metadata = { ...(raw as Record<string, string>) };
      continue;
    }
    if (typeof raw !== "object" || raw === null) fail(`tensor '${name}' entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (!isDType(dtype)) {
      fail(
        `tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)} ` +
          `(supported: ${Object.keys(DTYPE_SIZE).join(", ")})`,
      );
    }
    if (!isShape(shape)) {
      fail(`tensor '${name}' shape ${JSON.stringify(shape)} is not a list of integers >= 0`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0)
    ) {
      fail(`tensor '${name}' data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataLength) {
      fail(
        `tensor '${name}' data_offsets [${begin}, ${end}] out of range: the data section has ` +
          `${dataLength} bytes (truncated?)`,
      );
    }
    const want = numel(shape as number[]) * DTYPE_SIZE[dtype as SafetensorsDType];
    if (end - begin !== want) {
      fail(
        `tensor '${name}' shape [${shape}] of ${dtype} needs ${want} bytes but data_offsets ` +
          `[${begin}, ${end}] span ${end - begin}`,
      );
    }
    entries.set(name, {
      dtype: dtype as SafetensorsDType,
      shape: shape as number[],
      data_offsets: [begin, end],
    });
  }
  const sorted = [...entries].sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  let covered = 0;
  for (let i = 0; i < sorted.length; i++) {
    const [name, e] = sorted[i];
    if (i > 0 && e.data_offsets[0] < sorted[i - 1][1].data_offsets[1]) {
      const [prev, p] = sorted[i - 1];
      fail(
        `tensors '${prev}' [${p.data_offsets}] and '${name}' [${e.data_offsets}] overlap`,
      );
    }
    covered += e.data_offsets[1] - e.data_offsets[0];
  }
  if (covered !== dataLength) {
    fail(`${dataLength - covered} of the ${dataLength} data bytes belong to no tensor`);
  }
  return { entries, metadata, dataStart };
}

/**
 * The elements of one tensor's (or one block of its rows') stored bytes: F16 and BF16 as exact
 * Float32Array values, F32, I32 and I64 bit for bit. `bytes.length` must be a multiple of the
 * dtype's size.
 */
export function decodeTensorBytes(bytes: Uint8Array, dtype: SafetensorsDType): TensorData {
  if (bytes.length % DTYPE_SIZE[dtype] !== 0) {
    throw new RangeError(
      `decodeTensorBytes: ${bytes.length} bytes is not a whole number of ${dtype}`,
    );
  }
  return readElements(bytes, 0, bytes.length, dtype);
}

function readElements(
  bytes: Uint8Array,
  start: number,
  end: number,
  dtype: SafetensorsDType,
): TensorData {
  const size = DTYPE_SIZE[dtype];
  const count = (end - start) / size;
  if (dtype === "F16" || dtype === "BF16") {
    const view = new DataView(bytes.buffer, bytes.byteOffset + start, end - start);
    const bits = new Uint32Array(count);
    const convert = dtype === "F16" ? f16BitsToF32Bits : bf16BitsToF32Bits;
    for (let i = 0; i < count; i++) bits[i] = convert(view.getUint16(2 * i, true));
    return new Float32Array(bits.buffer);
  }
  // slice() copies into a fresh, aligned buffer; the typed view then reinterprets the bytes.
  const copy = bytes.slice(start, end);
  if (!LITTLE_ENDIAN) {
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  if (dtype === "F32") return new Float32Array(copy.buffer);
  if (dtype === "I32") return new Int32Array(copy.buffer);
  return new BigInt64Array(copy.buffer);
}

/**
 * Every tensor and the metadata of a safetensors file (see `decodeSafetensorsHeader` for the
 * checks). F16 and BF16 tensors come back as exact Float32Array copies; F32, I32, I64 bit for bit.
 *
 * @example
 * ```ts
 * const { tensors, metadata } = decodeSafetensors(await Deno.readFile("model.safetensors"));
 * ```
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  file = "<memory>",
): { tensors: Map<string, LoadedTensor>; metadata: Record<string, string> } {
  const { entries, metadata, dataStart } = decodeSafetensorsHeader(bytes, file);
  const tensors = new Map<string, LoadedTensor>();
  for (const [name, e] of entries) {
    const [begin, end] = e.data_offsets;
    const data = readElements(bytes, dataStart + begin, dataStart + end, e.dtype);
    tensors.set(name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}
