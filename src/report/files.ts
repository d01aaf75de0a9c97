/**
 * Run folders and crash-safe file writes.
 *
 * Every file a run writes goes through {@linkcode writeFileAtomic}: the bytes land in a temporary
 * file beside the target, then one rename replaces the target. A run interrupted mid-write leaves
 * the previous version or the new one, never half a file.
 *
 * @module
 */

/**
 * Writes `data` to `path` through a temporary file in the same folder and a rename (atomic on one
 * file system). The temporary file is removed if the write fails.
 *
 * @example
 * ```ts
 * await writeFileAtomic("runs/x/config.json", JSON.stringify({ seed: 1 }));
 * ```
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash + 1) : "";
  const base = slash >= 0 ? path.slice(slash + 1) : path;
  // The pid and a random suffix keep concurrent writers (two runs, two tests) apart.
  const tmp = `${dir}.${base}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** {@linkcode writeFileAtomic} of `JSON.stringify(value, null, 2)` plus a final newline. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n");
}

/** A non-empty run folder that the caller did not allow to be reused. */
export class RunDirNotEmptyError extends Error {
  /** @param dir the folder that already holds files. */
  constructor(readonly dir: string) {
    super(`output folder '${dir}' already exists and is not empty (pass --force to write into it)`);
    this.name = "RunDirNotEmptyError";
  }
}

/** A run folder path that exists but is a file (or another non-folder). */
export class RunDirNotAFolderError extends Error {
  /** @param dir the path that is not a folder. */
  constructor(readonly dir: string) {
    super(`output path '${dir}' exists and is not a folder`);
    this.name = "RunDirNotAFolderError";
  }
}

/**
 * Makes sure `dir` exists and may be written: creates it (with parents) when missing, accepts an
 * empty folder, and refuses a non-empty one with {@linkcode RunDirNotEmptyError} unless `force`
 * (and a path that is a file with {@linkcode RunDirNotAFolderError}).
 * With `force`, files are overwritten one by one and other files in the folder are left alone.
 */
export async function prepareRunDir(dir: string, { force = false } = {}): Promise<void> {
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (info === null) {
    await Deno.mkdir(dir, { recursive: true });
    return;
  }
  if (!info.isDirectory) throw new RunDirNotAFolderError(dir);
  if (force) return;
  for await (const _ of Deno.readDir(dir)) throw new RunDirNotEmptyError(dir);
}

/** A folder name stamp `YYYYMMDD-HHMMSS` (UTC) for default run folders. */
export function timestamp(date: Date = new Date()): string {
  const iso = date.toISOString(); // 2026-01-02T03:04:05.678Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-` +
    `${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
}
