/**
 * Finds a device run's files under the folders and archives given to the verdict: a stage's OUT
 * folder (logs and results.tar.gz), an extracted results tree (bench/, torch/, obrs/), a bench/
 * folder itself, or a `.tar.gz` (archives inside, such as obrs/obrs_sweep.tar.gz, are opened
 * too, with `tar`). Later arguments win where two hold the same file.
 *
 * @example
 * ```ts
 * const found = await collectFiles(["device-out"]);
 * const inputs = loadInputs(found.files);
 * found.cleanup();
 * ```
 *
 * @module
 */
import type { Input } from "./decision.ts";
import {
  FILES,
  formatProblem,
  OBRS_FILES,
  obrsFromJson,
  type ObrsSweep,
  parseObrsLog,
  type VerdictInputs,
} from "./files.ts";

/** One file found. */
export interface FoundFile {
  /** Path inside the folder or archive it was found in ("bench/tensor.json"). */
  rel: string;
  /** Where to read it now. */
  abs: string;
  /** How to name it to a person ("out/results.tar.gz:bench/tensor.json"). */
  shown: string;
}

/** The files found, notes on what was opened, and a cleanup for the extracted archives. */
export interface Collected {
  files: FoundFile[];
  notes: string[];
  cleanup: () => void;
}

const isArchive = (p: string) => p.endsWith(".tar.gz") || p.endsWith(".tgz");

async function extract(archive: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "verdict-" });
  const out = await new Deno.Command("tar", { args: ["xzf", archive, "-C", dir], stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(
      `tar could not extract ${archive}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return dir;
}

/**
 * Every file under `args` (folders and archives), archives opened recursively.
 * @throws Error naming an argument that is neither a folder nor a readable archive
 */
export async function collectFiles(args: string[]): Promise<Collected> {
  const files: FoundFile[] = [];
  const notes: string[] = [];
  const temps: string[] = [];
  const walk = async (root: string, shownRoot: string, prefix = ""): Promise<void> => {
    for await (const e of Deno.readDir(`${root}/${prefix}`)) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name;
      if (e.isDirectory) await walk(root, shownRoot, rel);
      else if (e.isFile && isArchive(e.name)) {
        await openArchive(`${root}/${rel}`, `${shownRoot}${rel}`);
      } else if (e.isFile) files.push({ rel, abs: `${root}/${rel}`, shown: `${shownRoot}${rel}` });
    }
  };
  const openArchive = async (abs: string, shown: string) => {
    const dir = await extract(abs);
    temps.push(dir);
    notes.push(`opened ${shown}`);
    await walk(dir, `${shown}:`);
  };
  const cleanup = () => {
    for (const t of temps) Deno.removeSync(t, { recursive: true });
  };
  try {
    for (const arg of args) {
      const path = arg.replace(/\/+$/, "") || "/";
      const info = await Deno.stat(path).catch(() => undefined);
      if (info?.isDirectory) await walk(path, `${path}/`);
      else if (info?.isFile && isArchive(path)) await openArchive(path, path);
      else throw new Error(`${arg} is neither a folder nor a .tar.gz archive`);
    }
  } catch (e) {
    cleanup();
    throw e;
  }
  return { files, notes, cleanup };
}

// The files that stand for `path` ("bench/tensor.json"): the same path at the end of theirs, or
// the same name outside a torch/ folder (a bench/ folder given itself); the last one wins.
function lookup(files: FoundFile[], path: string): FoundFile[] {
  const name = path.split("/").at(-1)!;
  return files.filter((f) =>
    f.rel === path || f.rel.endsWith(`/${path}`) ||
    (f.rel.split("/").at(-1) === name && !f.rel.split("/").includes("torch"))
  );
}

function readJson(f: FoundFile): { data: unknown } | { problem: string } {
  try {
    return { data: JSON.parse(Deno.readTextFileSync(f.abs)) };
  } catch (e) {
    return {
      problem: `not readable as JSON (${e instanceof Error ? e.message.split("\n")[0] : e})`,
    };
  }
}

function loadOne<K extends keyof typeof FILES>(
  files: FoundFile[],
  key: K,
  notes: string[],
): Input<never> {
  const spec = FILES[key];
  const hits = lookup(files, spec.path);
  if (hits.length === 0) {
    return { path: spec.path, problem: `not found (written by the ${spec.stage} stage)` };
  }
  const f = hits.at(-1)!;
  if (hits.length > 1) {
    const texts = new Set(hits.map((h) => Deno.readTextFileSync(h.abs)));
    if (texts.size > 1) {
      notes.push(`${hits.length} different copies of ${spec.path}: using ${f.shown}`);
    }
  }
  const got = readJson(f);
  if ("problem" in got) return { path: f.shown, problem: got.problem };
  const problem = formatProblem(key, got.data);
  return problem
    ? { path: f.shown, problem: `unexpected format (older run?): ${problem}` }
    : { path: f.shown, data: got.data as never };
}

function loadObrs(files: FoundFile[]): Input<ObrsSweep> {
  const json = files.filter((f) =>
    (OBRS_FILES.json as readonly string[]).includes(f.rel.split("/").at(-1)!)
  );
  const logs = files.filter((f) =>
    (OBRS_FILES.logs as readonly string[]).includes(f.rel.split("/").at(-1)!)
  );
  const sweep: ObrsSweep = { cases: [], wrong: [], files: [], notes: [] };
  const key = (x: { k: number; id: string }) => `${x.k} ${x.id}`;
  const add = (part: Omit<ObrsSweep, "files">, file: string) => {
    if (part.cases.length === 0 && part.wrong.length === 0) return;
    sweep.files.push(file);
    for (const n of part.notes) if (!sweep.notes.includes(n)) sweep.notes.push(n);
    // JSON is read first; a log adds what a stage stopped by its time limit left out of it.
    for (const c of part.cases) {
      if (!sweep.cases.some((x) => key(x) === key(c))) sweep.cases.push(c);
    }
    for (const w of part.wrong) {
      if (!sweep.wrong.some((x) => key(x) === key(w))) sweep.wrong.push(w);
    }
  };
  for (const f of json) {
    const got = readJson(f);
    if ("data" in got) add(obrsFromJson(got.data, f.shown), f.shown);
  }
  for (const f of logs) add(parseObrsLog(Deno.readTextFileSync(f.abs), f.shown), f.shown);
  if (sweep.files.length === 0) {
    return {
      path: "obrs_sweep.log",
      problem:
        "no OBRS sweep results (obrs_sweep.log or obrs/obrs_sweep.tar.gz; written by the sweep stage)",
    };
  }
  return { path: sweep.files.join(", "), data: sweep };
}

/**
 * Every rule input, parsed and format-checked, from the files found; `notes` collects what the
 * reader should know (duplicates that differ).
 */
export function loadInputs(files: FoundFile[], notes: string[] = []): VerdictInputs {
  return {
    tensor: loadOne(files, "tensor", notes),
    matmulDecode: loadOne(files, "matmulDecode", notes),
    swigluDown: loadOne(files, "swigluDown", notes),
    addRms: loadOne(files, "addRms", notes),
    attention: loadOne(files, "attention", notes),
    transformerComposed: loadOne(files, "transformerComposed", notes),
    transformerAuto: loadOne(files, "transformerAuto", notes),
    transformerDefer0: loadOne(files, "transformerDefer0", notes),
    transformerDefer64: loadOne(files, "transformerDefer64", notes),
    profile: loadOne(files, "profile", notes),
    obrs: loadObrs(files),
  };
}
