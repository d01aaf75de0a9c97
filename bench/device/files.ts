/**
 * The files a device run writes that the verdict rules read: their shapes (built on the record
 * types the bench scripts export, so a format change there breaks the type check here), the path
 * each has in a run's results tree, and light format checks that turn an older or foreign file
 * into a "cannot decide" instead of a stack trace.
 *
 * @module
 */
import type { TensorBenchRow } from "../tensor/main.ts";
import type { MatmulBenchRow } from "../matmul/main.ts";
import type { DecodeShape } from "../matmul/decode.ts";
import type { SwigluDownRow } from "../matmul/swiglu_down.ts";
import type { AddRmsRow } from "../matmul/add_rms_qkv.ts";
import type { AttentionBenchRow } from "../attention/main.ts";
import type { TransformerBenchFile } from "../nn/main.ts";
import type { AnchorProfile } from "../nn/profile.ts";
import type { ObrsBenchResult } from "../obrs/main.ts";
import type { Input } from "./decision.ts";

/** bench/tensor/main.ts --json: one row per op. */
export type TensorFile = TensorBenchRow[];

/** bench/matmul/main.ts --decode --json. */
export interface MatmulDecodeFile {
  device: string;
  isFallback: boolean;
  method: string;
  command: string;
  rows: MatmulBenchRow[];
  /** Present only in a `--decode` run. */
  decodeShapes?: DecodeShape[];
  clockSamples: unknown[];
}

/** bench/matmul/swiglu_down.ts --json. */
export interface SwigluDownFile {
  rows: SwigluDownRow[];
}

/** bench/matmul/add_rms_qkv.ts --json: one row per (anchor, product). */
export interface AddRmsFile {
  rows: AddRmsRow[];
}

/** bench/attention/main.ts --json: one row per (anchor, impl, pass). */
export type AttentionFile = AttentionBenchRow[];

/**
 * bench/nn/main.ts --json, as main.ts writes it, except that `deferSplitMb` may be absent (files
 * before it was recorded: the deferral rule then reads the setting from the file's name).
 */
export type TransformerFile =
  & Omit<TransformerBenchFile, "deferSplitMb">
  & Partial<Pick<TransformerBenchFile, "deferSplitMb">>;

/** bench/nn/profile.ts --json. */
export interface ProfileFile {
  adapter: string;
  profiles: AnchorProfile[];
}

/** bench/obrs/main.ts --out: one result per row count. */
export type ObrsFile = ObrsBenchResult[];

/** One timed OBRS case of the sweep, from a stage's JSON or from the sweep's log. */
export interface ObrsCase {
  /** Top-k size of the stage. */
  k: number;
  /** Case id (what `--only` matches: v10-g8, lse-v2, fused-s4, jackpot-g8, ...). */
  id: string;
  /** Median ms. */
  medianMs: number;
  /** The copy-rate floor of the case, ms. */
  limitMs: number;
  /** File it came from. */
  file: string;
}

/** The OBRS sweep (bench/obrs/sweep.sh), merged over its stages' JSON and its log. */
export interface ObrsSweep {
  cases: ObrsCase[];
  /** Cases that disagreed with the float64 reference (not timed). */
  wrong: { k: number; id: string; why: string; file: string }[];
  /** Files read. */
  files: string[];
  /** What to keep in mind about the runs (a CPU fallback adapter, another shape than 4,096 rows). */
  notes: string[];
}

/** Everything the rules read, each found or not. */
export interface VerdictInputs {
  tensor: Input<TensorFile>;
  matmulDecode: Input<MatmulDecodeFile>;
  swigluDown: Input<SwigluDownFile>;
  /** bench/matmul/add_rms_qkv.ts (defer stage). */
  addRms: Input<AddRmsFile>;
  attention: Input<AttentionFile>;
  /** bench/nn/main.ts --attention composed (fusion stage). */
  transformerComposed: Input<TransformerFile>;
  /** --attention auto, the library default (fusion stage): also the 4 MiB deferral figure. */
  transformerAuto: Input<TransformerFile>;
  /** --defer-split-mb 0 and 64 (defer stage). */
  transformerDefer0: Input<TransformerFile>;
  transformerDefer64: Input<TransformerFile>;
  profile: Input<ProfileFile>;
  obrs: Input<ObrsSweep>;
}

/** Where each JSON input lies in a results tree (run.sh's `$work`), and the stage that writes it. */
export const FILES = {
  tensor: { path: "bench/tensor.json", stage: "sweep" },
  matmulDecode: { path: "bench/matmul_decode.json", stage: "sweep" },
  swigluDown: { path: "bench/swiglu_down.json", stage: "fusion" },
  attention: { path: "bench/attention.json", stage: "fusion" },
  transformerComposed: { path: "bench/transformer_composed.json", stage: "fusion" },
  transformerAuto: { path: "bench/transformer_auto.json", stage: "fusion" },
  transformerDefer0: { path: "bench/transformer_defer0.json", stage: "defer" },
  transformerDefer64: { path: "bench/transformer_defer64.json", stage: "defer" },
  profile: { path: "bench/profile.json", stage: "sweep" },
  addRms: { path: "bench/add_rms_qkv.json", stage: "defer" },
} as const;

/** The OBRS sweep stages' JSON (inside obrs/obrs_sweep.tar.gz) and its logs. */
export const OBRS_FILES = {
  json: ["obrs_k20-fused.json", "obrs_k20-topk.json", "obrs_k1.json", "obrs_k64.json"],
  logs: ["obrs_sweep.log", "sweep.log"],
} as const;

type Kind = "number" | "string" | "array" | "boolean";

function kindOf(v: unknown): Kind | "other" {
  if (Array.isArray(v)) return "array";
  const t = typeof v;
  return t === "number" || t === "string" || t === "boolean" ? t : "other";
}

// The first field of `obj` that is absent or of another kind, as a problem; undefined when none.
function missingField(
  obj: unknown,
  fields: Record<string, Kind>,
  where: string,
): string | undefined {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    return `${where} is not an object`;
  }
  for (const [name, kind] of Object.entries(fields)) {
    const got = kindOf((obj as Record<string, unknown>)[name]);
    // NaN, Infinity and null all arrive as null through JSON: a number field may be null.
    if (got !== kind && !(kind === "number" && (obj as Record<string, unknown>)[name] === null)) {
      return `${where} has no ${kind} field '${name}'`;
    }
  }
  return undefined;
}

function rowsProblem(rows: unknown, fields: Record<string, Kind>, where: string) {
  if (!Array.isArray(rows)) return `${where} is not an array`;
  if (rows.length === 0) return `${where} is empty`;
  for (const [i, r] of rows.entries()) {
    const p = missingField(r, fields, `${where}[${i}]`);
    if (p) return p;
  }
  return undefined;
}

const TRANSFORMER_ROW = {
  anchor: "string",
  B: "number",
  T: "number",
  stepGpuMs: "number",
} as const;

// A recorded v14 tiling (optional: files before it lack it) must hold the fields the rules read.
function tilingProblem(shapes: unknown[]): string | undefined {
  for (const [i, s] of shapes.entries()) {
    const t = (s as { v14Tiling?: unknown } | null)?.v14Tiling;
    if (t === undefined) continue;
    const p = missingField(
      t,
      { rowGroups: "number", colGroups: "number", kSplits: "number" },
      `decodeShapes[${i}].v14Tiling`,
    );
    if (p) return p;
  }
  return undefined;
}

/**
 * Why `data` is not in the format of input `key` (the fields the rules read), or undefined.
 *
 * @example
 * ```ts
 * formatProblem("swigluDown", { rows: [] }); // "rows is empty"
 * ```
 */
export function formatProblem(key: keyof typeof FILES, data: unknown): string | undefined {
  const obj = (data ?? {}) as Record<string, unknown>;
  switch (key) {
    case "tensor":
      return rowsProblem(data, { op: "string", ofCopy: "number", method: "string" }, "the file");
    case "matmulDecode":
      return missingField(data, { rows: "array" }, "the file") ??
        (Array.isArray(obj.decodeShapes)
          ? rowsProblem(obj.rows, { version: "string", M: "number", ms: "number" }, "rows") ??
            tilingProblem(obj.decodeShapes)
          : "no decodeShapes: not a `bench/matmul/main.ts --decode` run");
    case "swigluDown":
      return missingField(data, { rows: "array" }, "the file") ??
        rowsProblem(obj.rows, {
          anchor: "string",
          composedMs: "number",
          fusedMs: "number",
          composedRatio: "number",
          fusedRatio: "number",
        }, "rows");
    case "addRms":
      return missingField(data, { rows: "array" }, "the file") ??
        rowsProblem(obj.rows, {
          anchor: "string",
          product: "string",
          K: "number",
          perStep: "number",
          composedMs: "number",
          fusedMs: "number",
          composedKernels: "array",
          composedRatio: "number",
          fusedRatio: "number",
          sumsExact: "boolean",
        }, "rows");
    case "attention":
      return rowsProblem(
        data,
        { anchor: "string", impl: "string", pass: "string", ms: "number" },
        "the file",
      );
    case "transformerComposed":
    case "transformerAuto":
    case "transformerDefer0":
    case "transformerDefer64":
      return missingField(data, { rows: "array", attention: "string" }, "the file") ??
        (obj.deferSplitMb === undefined || obj.deferSplitMb === "off" ||
            (typeof obj.deferSplitMb === "number" && obj.deferSplitMb >= 0)
          ? rowsProblem(obj.rows, TRANSFORMER_ROW, "rows")
          : `deferSplitMb is ${JSON.stringify(obj.deferSplitMb)}, not a number of MiB or 'off'`);
    case "profile":
      return missingField(data, { profiles: "array" }, "the file") ??
        rowsProblem(obj.profiles, {
          anchor: "string",
          stepByKernel: "array",
          genByKernel: "array",
          stepOnePassMs: "number",
        }, "profiles");
  }
}

/** The id of an OBRS case from its printed name (files before the `id` field, and the log). */
export function obrsIdFromName(name: string): string | undefined {
  const m =
    /^(?:top-k (v[\w-]+)|log-sum-exp (lse[\w-]*)|fused row pass (fused[\w-]*)|jackpot weights (jackpot[\w-]*))/
      .exec(name);
  return m ? m[1] ?? m[2] ?? m[3] ?? m[4] : undefined;
}

/**
 * The OBRS cases and WRONG lines of a sweep log (bench/obrs/sweep.sh's `[obrs k=N] ...` lines,
 * printed as each case finishes, so a stage stopped by its time limit keeps what it timed).
 *
 * @example
 * ```ts
 * parseObrsLog("[obrs k=20]      1.904 ms  1.31e+3 GB/s read  (limit 0.825 ms)  fused row pass fused (…)", "obrs_sweep.log");
 * ```
 */
export function parseObrsLog(text: string, file: string): Omit<ObrsSweep, "files"> {
  const cases: ObrsCase[] = [];
  const wrong: ObrsSweep["wrong"] = [];
  const notes: string[] = [];
  for (const line of text.split("\n")) {
    const w = /^\[obrs k=(\d+)\] WRONG \(not timed\): ([\w-]+): (.*)$/.exec(line);
    if (w) {
      wrong.push({ k: Number(w[1]), id: w[2], why: w[3], file });
      continue;
    }
    const m = /^\[obrs k=(\d+)\]\s+([\d.]+) ms\s+\S+ GB\/s read\s+\(limit ([\d.]+) ms\)\s+(.*)$/
      .exec(line);
    const id = m ? obrsIdFromName(m[4]) : undefined;
    if (m && id) {
      cases.push({ k: Number(m[1]), id, medianMs: Number(m[2]), limitMs: Number(m[3]), file });
    }
    const shape = /^== [\w-]+: (\d+) × (\d+), k = /.exec(line);
    if (shape && shape[1] !== "4096") {
      notes.push(`${shape[1]} × ${shape[2]}, not 4,096 rows`);
    }
  }
  return { cases, wrong, notes: [...new Set(notes)] };
}

/**
 * The cases and WRONG entries of one stage's JSON (`ObrsBenchResult[]`), at 4,096 rows or
 * whatever single row count the stage ran.
 */
export function obrsFromJson(data: unknown, file: string): Omit<ObrsSweep, "files"> {
  const cases: ObrsCase[] = [];
  const wrong: ObrsSweep["wrong"] = [];
  const notes: string[] = [];
  if (!Array.isArray(data)) return { cases, wrong, notes };
  for (const r of data as Partial<ObrsBenchResult>[]) {
    if (typeof r?.k !== "number" || !Array.isArray(r.results)) continue;
    if (r.fallback) notes.push("a CPU fallback adapter (not GPU figures)");
    if (r.rows !== 4096) notes.push(`${r.rows} × ${r.vocab}, not 4,096 rows`);
    for (const x of r.results) {
      const id = (x as { id?: string }).id ?? obrsIdFromName(String(x.name));
      if (id && typeof x.medianMs === "number") {
        cases.push({ k: r.k, id, medianMs: x.medianMs, limitMs: x.limitMs, file });
      }
    }
    for (const w of r.wrong ?? []) {
      const i = w.indexOf(": ");
      wrong.push({ k: r.k, id: w.slice(0, i), why: w.slice(i + 2), file });
    }
  }
  return { cases, wrong, notes };
}
