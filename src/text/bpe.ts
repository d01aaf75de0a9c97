/**
 * The BPE model: a word (one pre-tokenized piece) is split into its characters, then the adjacent
 * pair whose merge has the lowest rank is merged, the leftmost first among equals, until no
 * adjacent pair has a merge. This is `Word::merge_all` of Hugging Face `tokenizers`
 * (`models/bpe/word.rs`) without dropout: a min-heap of candidate merges keyed by (rank, position)
 * over a doubly linked list of symbols, stale entries skipped when popped, so a word of n
 * characters costs O(n log n) instead of the O(n²) rescans of the textbook loop
 * (`bpe_reference.ts` keeps that loop as the reference the tests compare with).
 *
 * The model is pure; `BpeTokenizer` caches merged words (most words repeat).
 *
 * @module
 */

/** Largest word (in characters) whose heap keys stay exact: rank · 2^26 + position < 2^53. */
const POSITION_BITS = 26;
const POSITION_SCALE = 2 ** POSITION_BITS;

/**
 * Open-addressing hash map from a pair of token ids to the rank of its merge: the merge loop's
 * only lookup, kept out of `Map` so that a lookup is two integer multiplies and no allocation.
 */
class PairRanks {
  readonly #left: Int32Array;
  readonly #right: Int32Array;
  readonly #rank: Int32Array;
  readonly #mask: number;

  constructor(capacityHint: number) {
    let size = 16;
    while (size < 2 * capacityHint) size *= 2;
    this.#left = new Int32Array(size).fill(-1);
    this.#right = new Int32Array(size);
    this.#rank = new Int32Array(size);
    this.#mask = size - 1;
  }

  #slot(a: number, b: number): number {
    let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) >>> 0;
    h ^= h >>> 15;
    let s = h & this.#mask;
    while (this.#left[s] !== -1 && (this.#left[s] !== a || this.#right[s] !== b)) {
      s = (s + 1) & this.#mask;
    }
    return s;
  }

  /** Sets the rank of (a, b); a later merge of the same pair replaces an earlier one. */
  set(a: number, b: number, rank: number): void {
    const s = this.#slot(a, b);
    this.#left[s] = a;
    this.#right[s] = b;
    this.#rank[s] = rank;
  }

  /** The rank of the merge of (a, b), or -1. */
  get(a: number, b: number): number {
    const s = this.#slot(a, b);
    return this.#left[s] === -1 ? -1 : this.#rank[s];
  }
}

/** What a `BpeModel` is built from (already validated by the tokenizer.json loader). */
export interface BpeModelSpec {
  /** Token string → id. */
  vocab: ReadonlyMap<string, number>;
  /** Merges in rank order: `[left, right]` token strings. */
  merges: readonly (readonly [string, string])[];
  /** Return a word that is itself in the vocabulary as one token, without merging. */
  ignoreMerges: boolean;
  /** Token for characters missing from the vocabulary (null: such a character is an error). */
  unkToken: string | null;
  /** Consecutive unknown characters become one unk token. */
  fuseUnk: boolean;
}

/** Byte-pair encoding of pre-tokenized words into token ids. */
export class BpeModel {
  readonly #vocab: ReadonlyMap<string, number>;
  readonly #ranks: PairRanks;
  /** `#mergedId[rank]`: the id of the token that merge `rank` makes. */
  readonly #mergedId: Int32Array;
  /** Id of the one-character token for code points below 512 (the byte-level alphabet), or -1. */
  readonly #charId = new Int32Array(512).fill(-1);
  readonly #ignoreMerges: boolean;
  readonly #unkId: number;
  readonly #fuseUnk: boolean;
  // Scratch for mergeWord, grown as needed.
  #ids = new Int32Array(64);
  #prev = new Int32Array(64);
  #next = new Int32Array(64);
  #heap = new Float64Array(256);

  constructor(spec: BpeModelSpec) {
    this.#vocab = spec.vocab;
    this.#ignoreMerges = spec.ignoreMerges;
    this.#fuseUnk = spec.fuseUnk;
    this.#unkId = spec.unkToken === null ? -1 : spec.vocab.get(spec.unkToken)!;
    for (const [s, id] of spec.vocab) {
      if (s.length === 1 && s.charCodeAt(0) < 512) this.#charId[s.charCodeAt(0)] = id;
    }
    this.#ranks = new PairRanks(spec.merges.length);
    this.#mergedId = new Int32Array(spec.merges.length);
    spec.merges.forEach(([a, b], rank) => {
      this.#ranks.set(spec.vocab.get(a)!, spec.vocab.get(b)!, rank);
      this.#mergedId[rank] = spec.vocab.get(a + b)!;
    });
  }

  /**
   * Token ids of one word (a pre-tokenized piece, in the byte-level alphabet).
   * @throws Error when a character has no token and there is no unk token.
   */
  tokenize(word: string): Int32Array {
    if (word.length === 0) return new Int32Array(0);
    if (this.#ignoreMerges) {
      const id = this.#vocab.get(word);
      if (id !== undefined) return Int32Array.of(id);
    }
    return this.#mergeWord(word);
  }

  /** Initial symbols of `word` (one per character, unk where needed) into `#ids`; their count. */
  #symbols(word: string): number {
    if (this.#ids.length < word.length) {
      const n = 2 * word.length;
      this.#ids = new Int32Array(n);
      this.#prev = new Int32Array(n);
      this.#next = new Int32Array(n);
    }
    const ids = this.#ids;
    let n = 0;
    let unkRun = false;
    for (let i = 0; i < word.length; i++) {
      const c = word.charCodeAt(i);
      let id = c < 512 ? this.#charId[c] : -1;
      if (id < 0) {
        const wide = c >= 0xd800 && c <= 0xdbff && i + 1 < word.length;
        const ch = wide ? word.slice(i, i + 2) : word[i];
        if (wide) i++;
        id = this.#vocab.get(ch) ?? -1;
        if (id < 0) {
          if (this.#unkId < 0) {
            throw new Error(
              `BPE: character ${JSON.stringify(ch)} (U+${
                ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")
              }) of word ${JSON.stringify(word)} has no token and the model has no unk_token`,
            );
          }
          if (!(this.#fuseUnk && unkRun)) ids[n++] = this.#unkId;
          unkRun = true;
          continue;
        }
      }
      unkRun = false;
      ids[n++] = id;
    }
    return n;
  }

  #mergeWord(word: string): Int32Array {
    const n = this.#symbols(word);
    if (n >= POSITION_SCALE) {
      throw new Error(`BPE: word of ${n} characters is longer than 2^${POSITION_BITS}`);
    }
    const ids = this.#ids, prev = this.#prev, next = this.#next, ranks = this.#ranks;
    if (this.#heap.length < 3 * n + 8) this.#heap = new Float64Array(6 * n + 16);
    const heap = this.#heap;
    let size = 0;
    // Min-heap of rank · 2^26 + position: the lowest rank first, the leftmost among equals.
    const push = (key: number) => {
      let k = size++;
      while (k > 0) {
        const parent = (k - 1) >> 1;
        if (heap[parent] <= key) break;
        heap[k] = heap[parent];
        k = parent;
      }
      heap[k] = key;
    };
    const pop = (): number => {
      const top = heap[0];
      const last = heap[--size];
      let k = 0;
      for (;;) {
        let child = 2 * k + 1;
        if (child >= size) break;
        if (child + 1 < size && heap[child + 1] < heap[child]) child++;
        if (heap[child] >= last) break;
        heap[k] = heap[child];
        k = child;
      }
      heap[k] = last;
      return top;
    };

    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (let i = 0; i + 1 < n; i++) {
      const r = ranks.get(ids[i], ids[i + 1]);
      if (r >= 0) push(r * POSITION_SCALE + i);
    }
    let alive = n;
    while (size > 0) {
      const key = pop();
      const rank = Math.floor(key / POSITION_SCALE);
      const pos = key - rank * POSITION_SCALE;
      // A removed symbol has ids -1; a changed pair has another rank: the entry is stale.
      if (ids[pos] < 0) continue;
      const right = next[pos];
      if (right < 0 || ranks.get(ids[pos], ids[right]) !== rank) continue;
      ids[pos] = this.#mergedId[rank];
      ids[right] = -1;
      alive--;
      const after = next[right];
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      const before = prev[pos];
      if (before >= 0) {
        const r = ranks.get(ids[before], ids[pos]);
        if (r >= 0) push(r * POSITION_SCALE + before);
      }
      if (after >= 0) {
        const r = ranks.get(ids[pos], ids[after]);
        if (r >= 0) push(r * POSITION_SCALE + pos);
      }
    }
    const result = new Int32Array(alive);
    for (let i = 0, k = 0; i >= 0 && k < alive; i = next[i]) result[k++] = ids[i];
    return result;
  }
}
