/**
 * AD range retrieval: a group with more than 1500 (MaxValRange) members answers
 * `member;range=0-1499` and no plain `member`; ask for `member;range=1500-*` and on, until the key
 * ends in `-*` (MS-ADTS §3.1.1.3.1.3.3). ldapts does not do it for you.
 */
import type { Entry } from 'ldapts';

/** Reads one entry (base scope) with the given attributes. */
export type ReadEntry = (dn: string, attributes: string[]) => Promise<Entry | undefined>;

const RANGE = /^([^;]+);range=(\d+)-(\d+|\*)$/i;

interface RangedValues {
  start: number;
  end: number | '*';
  values: string[];
}

/** The `attribute;range=a-b` values of an entry, when the server returned a range. */
export function rangeOf(entry: Entry, attribute: string): RangedValues | null {
  for (const [key, value] of Object.entries(entry)) {
    const match = RANGE.exec(key);
    if (!match || match[1]!.toLowerCase() !== attribute.toLowerCase()) continue;
    const list = Array.isArray(value) ? value : [value];
    return {
      start: Number(match[2]),
      end: match[3] === '*' ? '*' : Number(match[3]),
      values: list.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v)),
    };
  }
  return null;
}

export class RangeRetrievalFailed extends Error {
  constructor(dn: string, attribute: string, read: number) {
    super(`range retrieval of ${attribute} on "${dn}" stopped after ${read} values`);
    this.name = 'RangeRetrievalFailed';
  }
}

/**
 * Every value of a ranged attribute: the first range as read with the entry, then the rest, one
 * request per range. Returns null when the entry carried no range (the plain attribute is complete).
 */
export async function readAllRanges({
  entry,
  attribute,
  readEntry,
}: {
  entry: Entry;
  attribute: string;
  readEntry: ReadEntry;
}): Promise<string[] | null> {
  let range = rangeOf(entry, attribute);
  if (range === null) return null;
  const values = [...range.values];
  while (range.end !== '*') {
    const next = range.end + 1;
    const page = await readEntry(entry.dn, [`${attribute};range=${next}-*`]);
    const following = page ? rangeOf(page, attribute) : null;
    // A missing range or one that does not continue where the last ended would lose members.
    if (following === null || following.start !== next) throw new RangeRetrievalFailed(entry.dn, attribute, values.length);
    values.push(...following.values);
    range = following;
  }
  return values;
}
