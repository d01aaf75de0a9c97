/**
 * The file-system seam of the checkpoint code: the only file that touches `Deno.*`, so that a port
 * to another runtime (Bun, Node) replaces this file and nothing else.
 *
 * @module
 */

/** A checkpoint file that cannot be read or parsed; the message names the file and the problem. */
export class CheckpointError extends Error {
  /**
   * @param file the path (or `<memory>`) of the offending file.
   * @param problem one sentence naming what is wrong.
   */
  constructor(
    readonly file: string,
    readonly problem: string,
    /** The file does not exist (a wrong path, rather than a corrupt checkpoint). */
    readonly notFound = false,
  ) {
    super(`${file}: ${problem}`);
    this.name = "CheckpointError";
  }
}

/** `dir/name` with one separator. */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function reason(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** The bytes of `path`; a missing or unreadable file is a `CheckpointError`. */
export async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw new CheckpointError(
      path,
      `cannot read the file (${reason(e)})`,
      e instanceof Deno.errors.NotFound,
    );
  }
}

/**
 * An open file that is read in byte ranges (a safetensors header, then one tensor or a block of
 * its rows at a time), so that a checkpoint larger than memory can be loaded piece by piece.
 * Errors are `CheckpointError`s naming the file.
 */
export class RangeReader {
  /** The file's path. */
  readonly path: string;
  /** The file's size in bytes when it was opened. */
  readonly size: number;
  #file: Deno.FsFile;
  // A read is a seek then reads on one file position: reads issued together (Promise.all) would
  // interleave and mix their bytes, so each waits for the one before.
  #last: Promise<unknown> = Promise.resolve();

  private constructor(path: string, file: Deno.FsFile, size: number) {
    this.path = path;
    this.#file = file;
    this.size = size;
  }

  /** Opens `path`; a missing file is a `CheckpointError` with `notFound` set. */
  static async open(path: string): Promise<RangeReader> {
    let file: Deno.FsFile | undefined;
    try {
      file = await Deno.open(path, { read: true });
      const { size, isFile } = await file.stat();
      if (!isFile) throw new Error("not a plain file");
      return new RangeReader(path, file, size);
    } catch (e) {
      file?.close();
      throw new CheckpointError(
        path,
        `cannot read the file (${reason(e)})`,
        e instanceof Deno.errors.NotFound,
      );
    }
  }

  /**
   * Fills `into` with the bytes from `begin`. A file that ends first (shortened since it was
   * opened) is an error, never a partly filled buffer.
   */
  readInto(begin: number, into: Uint8Array): Promise<Uint8Array> {
    const read = this.#last.then(() => this.#readNow(begin, into));
    this.#last = read.catch(() => {});
    return read;
  }

  async #readNow(begin: number, into: Uint8Array): Promise<Uint8Array> {
    try {
      await this.#file.seek(begin, Deno.SeekMode.Start);
      let done = 0;
      while (done < into.length) {
        const n = await this.#file.read(into.subarray(done));
        if (n === null) {
          throw new CheckpointError(
            this.path,
            `ends at byte ${begin + done}, before ${
              begin + into.length
            } (truncated while reading?)`,
          );
        }
        done += n;
      }
      return into;
    } catch (e) {
      if (e instanceof CheckpointError) throw e;
      throw new CheckpointError(this.path, `cannot read the file (${reason(e)})`);
    }
  }

  /** `length` bytes from `begin`, in a new buffer. */
  read(begin: number, length: number): Promise<Uint8Array> {
    return this.readInto(begin, new Uint8Array(length));
  }

  /** Closes the file (idempotent). */
  close(): void {
    try {
      this.#file.close();
    } catch {
      // already closed
    }
  }
}

/** The text of `path` (UTF-8); a missing or unreadable file is a `CheckpointError`. */
export async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new CheckpointError(
      path,
      `cannot read the file (${reason(e)})`,
      e instanceof Deno.errors.NotFound,
    );
  }
}

/** Creates `dir` and its parents when missing. */
export async function ensureDir(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
}

/**
 * Writes `data` to `path` atomically: a temporary file in the same folder (so the rename stays on
 * one file system), flushed to disk, then renamed over `path`. A reader sees the old file or the
 * new one, never a partial write; a crash leaves at most a stray `*.tmp-*` file.
 */
export async function writeBytesAtomic(path: string, data: Uint8Array): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : path.slice(0, slash) || "/";
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      let written = 0;
      while (written < data.length) written += await file.write(data.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new CheckpointError(path, `cannot write the file (${reason(e)})`);
  }
  // Flush the directory entry too so the rename survives a power loss; not every platform allows
  // opening a directory, and the data itself is already on disk, so failure here is not an error.
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // best effort
  }
}

/** Writes UTF-8 `text` to `path` atomically (see `writeBytesAtomic`). */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  await writeBytesAtomic(path, new TextEncoder().encode(text));
}

/** Removes the file `path`; true when it existed, false when it did not. Other failures throw. */
export async function removeFile(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new CheckpointError(path, `cannot remove the file (${reason(e)})`);
  }
}

/** Names of the plain files in `dir` (empty when `dir` does not exist or cannot be listed). */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isFile) out.push(e.name);
  } catch {
    return [];
  }
  return out.sort();
}
