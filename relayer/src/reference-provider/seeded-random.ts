import { createHash } from "node:crypto";

/** A deterministic pseudo-random sequence: the same seed gives the same values. */
export interface SeededRandom {
  /** The next value, uniform in [0, 1). */
  next(): number;
  /** The next integer, uniform in [min, max] (both inclusive). */
  int(min: number, max: number): number;
  /** The next element of a non-empty list, uniformly. */
  pick<T>(items: readonly T[]): T;
}

/**
 * Creates a {@link SeededRandom} from any seed text: the SHA-256 of the seed
 * initialises an SFC32 generator. Not for cryptography.
 */
export function createSeededRandom(seed: string): SeededRandom {
  const digest = createHash("sha256").update(seed).digest();
  let a = digest.readUInt32LE(0);
  let b = digest.readUInt32LE(4);
  let c = digest.readUInt32LE(8);
  let counter = digest.readUInt32LE(12);

  function nextUint32(): number {
    const result = (a + b + counter) >>> 0;
    counter = (counter + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + result) >>> 0;
    return result;
  }

  const random: SeededRandom = {
    next: () => nextUint32() / 2 ** 32,
    int: (min, max) => min + Math.floor(random.next() * (max - min + 1)),
    pick: (items) => {
      if (items.length === 0) throw new RangeError("cannot pick from an empty list");
      return items[random.int(0, items.length - 1)];
    },
  };
  return random;
}
