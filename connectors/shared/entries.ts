/**
 * Reading attribute values out of ldapts entries, whose keys keep the server's spelling. Every
 * accessor looks the attribute up in place (the exact spelling first, then a case-insensitive
 * scan of the keys) and builds no array or pair list per lookup: a 100k-user read calls these
 * half a million times.
 */
import type { Entry } from 'ldapts';
import type { ExternalIdFormat } from '../../src/sync/settings.js';
import { formatGuid } from './guid.js';

export type { Entry };

type Value = Entry[string];

/** The raw value of an attribute (one value or a list), matched case-insensitively; never `dn`. */
function lookup(entry: Entry, attribute: string): Value | undefined {
  if (attribute !== 'dn' && Object.prototype.hasOwnProperty.call(entry, attribute)) return entry[attribute];
  const n = attribute.length;
  let wanted: string | undefined;
  for (const key in entry) {
    if (key.length !== n || key === 'dn') continue;
    wanted ??= attribute.toLowerCase();
    if (key.toLowerCase() === wanted) return entry[key];
  }
  return undefined;
}

const text = (value: string | Buffer): string => (typeof value === 'string' ? value : value.toString('utf8'));

/** The values of an attribute, matched case-insensitively, without `;range=` or other options. */
export function valuesOf(entry: Entry, attribute: string): (string | Buffer)[] {
  const value = lookup(entry, attribute);
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

export function stringsOf(entry: Entry, attribute: string): string[] {
  const value = lookup(entry, attribute);
  if (value === undefined) return [];
  if (!Array.isArray(value)) return [text(value)];
  const out = new Array<string>(value.length);
  for (let i = 0; i < value.length; i++) out[i] = text(value[i]!);
  return out;
}

/** The first value that is not blank, trimmed; null when there is none. */
export function firstString(entry: Entry, attribute: string): string | null {
  const value = lookup(entry, attribute);
  if (value === undefined) return null;
  if (!Array.isArray(value)) {
    const trimmed = text(value).trim();
    return trimmed.length > 0 ? trimmed : null;
  }
  for (const v of value) {
    const trimmed = text(v).trim();
    if (trimmed.length > 0) return trimmed;
  }
  return null;
}

/** The external id in its printed form; null when the entry lacks it or it is malformed. */
export function externalIdOf(entry: Entry, attribute: string, format: ExternalIdFormat): string | null {
  const raw = lookup(entry, attribute);
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined) return null;
  if (format === 'guid') return Buffer.isBuffer(value) ? formatGuid(value) : null;
  const trimmed = text(value).trim();
  return trimmed.length > 0 ? trimmed : null;
}

/**
 * Attributes to ask ldapts for as buffers: a GUID must never go through UTF-8 decoding
 * (directory-notes.md: about one in tens of thousands then arrives as a string). ldapts matches
 * the names case-sensitively against the server's spelling, so list the usual spellings too.
 */
export function bufferAttributes(attribute: string, format: ExternalIdFormat): string[] {
  if (format !== 'guid') return [];
  return [...new Set([attribute, attribute.toLowerCase(), attribute.toLowerCase() === 'objectguid' ? 'objectGUID' : attribute])];
}
