/**
 * How `saveCheckpoint` splits weights into shards, and the index it writes: transformers' layout
 * (`model-00001-of-00003.safetensors` …, `model.safetensors.index.json` with
 * `{"metadata": {"total_size": …}, "weight_map": {name: file}}`, keys sorted, two-space indent).
 * Pure functions: `checkpoint.ts` does the writing.
 *
 * @module
 */
import type { FloatDType } from "./dtype.ts";
import { type HostTensor, storedByteLength } from "./safetensors.ts";
import { WEIGHTS_FILE } from "./shards.ts";

/** One file of a plan: its name, its tensors (in checkpoint order) and their data bytes. */
export interface ShardPlan {
  /** File name in the checkpoint folder. */
  file: string;
  /** Tensor names, in the order given. */
  names: string[];
  /** Bytes of their data as stored (the header aside). */
  bytes: number;
}

/** transformers' name of shard `i` (0-based) of `n`: `model-00001-of-00003.safetensors`. */
export function shardFileName(i: number, n: number): string {
  const pad = (k: number) => String(k).padStart(5, "0");
  return `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
}

/** Whether `name` looks like a shard file name written by `save_pretrained` or jackpot. */
export function isShardFileName(name: string): boolean {
  return /^model-\d{5,}-of-\d{5,}\.safetensors$/.test(name);
}

/**
 * The files `tensors` go into: one `model.safetensors` when their data fits in `maxShardBytes`
 * (or no limit is given), else shards filled in order, each closed when the next tensor would
 * take it past the limit. A tensor is never split; one larger than the limit gets a shard of its
 * own. Sizes count data bytes as stored in `floatDType`, as transformers counts them.
 *
 * @example
 * ```ts
 * planShards(tensors, "BF16", 2 ** 30).map((s) => s.file); // ["model-00001-of-00002.safetensors", …]
 * ```
 */
export function planShards(
  tensors: ReadonlyMap<string, HostTensor>,
  floatDType: FloatDType,
  maxShardBytes?: number,
): ShardPlan[] {
  const groups: { names: string[]; bytes: number }[] = [];
  let current: { names: string[]; bytes: number } = { names: [], bytes: 0 };
  const close = () => {
    if (current.names.length > 0) groups.push(current);
    current = { names: [], bytes: 0 };
  };
  for (const [name, t] of tensors) {
    const size = storedByteLength(t, floatDType);
    if (maxShardBytes !== undefined) {
      if (size > maxShardBytes) {
        close();
        groups.push({ names: [name], bytes: size });
        continue;
      }
      if (current.bytes + size > maxShardBytes) close();
    }
    current.names.push(name);
    current.bytes += size;
  }
  close();
  if (groups.length <= 1) {
    return [{ file: WEIGHTS_FILE, names: groups[0]?.names ?? [], bytes: groups[0]?.bytes ?? 0 }];
  }
  return groups.map((g, i) => ({ file: shardFileName(i, groups.length), ...g }));
}

/**
 * The text of `model.safetensors.index.json` for `shards`, as transformers writes it:
 * `{"metadata": {"total_size": bytes}, "weight_map": {name: file}}`, keys sorted, indent 2.
 */
export function shardIndexText(shards: readonly ShardPlan[]): string {
  const map: [string, string][] = [];
  for (const s of shards) for (const n of s.names) map.push([n, s.file]);
  map.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const total = shards.reduce((sum, s) => sum + s.bytes, 0);
  const index = { metadata: { total_size: total }, weight_map: Object.fromEntries(map) };
  return JSON.stringify(index, null, 2) + "\n";
}
