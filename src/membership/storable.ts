/**
 * What the database can hold, checked before a value reaches SQL, so that input it cannot store
 * is refused as input (400) rather than failing the query (500).
 */

/**
 * NUL, or a code point that is a surrogate (only an unpaired one reads as such under the `u` flag).
 * PostgreSQL text cannot hold NUL, and an unpaired surrogate has no UTF-8 form: the drivers write
 * U+FFFD for it in text, and jsonb refuses its `\ud800` escape.
 */
const UNSTORABLE_TEXT = /[\u0000\p{Cs}]/u;

/** Whether `value` can be stored and compared as text, as given. */
export const isStorableText = (value: string): boolean => !UNSTORABLE_TEXT.test(value);

/**
 * Both drivers send a timestamp as `Date#toISOString()`. PostgreSQL stores 4713 BC to 294276 AD,
 * but reads that ISO form only for years 0001–9999: year 0 is out of range, and the six-digit
 * `+010000-…`/`-000001-…` forms are not read at all. So those years bound what a query may carry.
 */
const EARLIEST = Date.parse('0001-01-01T00:00:00.000Z');
const LATEST = Date.parse('9999-12-31T23:59:59.999Z');

/** Whether `date` is a valid date the database can store and compare. */
export const isStorableDate = (date: Date): boolean => {
  const time = date.getTime();
  return time >= EARLIEST && time <= LATEST;
};

/** Paths of strings (keys too) PostgreSQL cannot store in jsonb: NUL, unpaired surrogates. */
export function unstorablePaths(value: unknown, path: string): string[] {
  if (typeof value === 'string') return isStorableText(value) ? [] : [path];
  if (Array.isArray(value)) return value.flatMap((item, i) => unstorablePaths(item, `${path}.${i}`));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, item]) => [
      ...(isStorableText(key) ? [] : [path]),
      ...unstorablePaths(item, `${path}.${key}`),
    ]);
  }
  return [];
}
