/**
 * The textbook BPE merge loop, kept obviously correct and slow as the reference for `BpeModel`:
 * scan every adjacent pair, merge the leftmost pair of lowest rank, repeat until no pair has a
 * merge. It works on token strings and a rank table keyed by the pair, sharing no data structure
 * with the fast model.
 *
 * @module
 */

/** The rank of each merge by its pair, for `referenceBpe`; later duplicates win, as in `tokenizers`. */
export function mergeRanks(merges: readonly (readonly [string, string])[]): Map<string, number> {
  const ranks = new Map<string, number>();
  merges.forEach(([a, b], rank) => ranks.set(JSON.stringify([a, b]), rank));
  return ranks;
}

/**
 * Token strings of one word by repeated lowest-rank merging.
 *
 * @param word the word; split into its code points before merging.
 * @param ranks from `mergeRanks`.
 *
 * @example
 * ```ts
 * referenceBpe("aab", mergeRanks([["a", "b"], ["a", "ab"]])); // ["aab"]
 * ```
 */
export function referenceBpe(word: string, ranks: ReadonlyMap<string, number>): string[] {
  const symbols = Array.from(word);
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const rank = ranks.get(JSON.stringify([symbols[i], symbols[i + 1]]));
      if (rank !== undefined && rank < bestRank) {
        bestRank = rank;
        best = i;
      }
    }
    if (best < 0) return symbols;
    symbols.splice(best, 2, symbols[best] + symbols[best + 1]);
  }
}
