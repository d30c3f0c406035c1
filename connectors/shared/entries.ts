/** Reading attribute values out of ldapts entries, whose keys keep the server's spelling. */
import type { Entry } from 'ldapts';
import type { ExternalIdFormat } from '../../src/sync/settings.js';
import { formatGuid } from './guid.js';

export type { Entry };

/** The values of an attribute, matched case-insensitively, without `;range=` or other options. */
export function valuesOf(entry: Entry, attribute: string): (string | Buffer)[] {
  const wanted = attribute.toLowerCase();
  for (const [key, value] of Object.entries(entry)) {
    if (key === 'dn' || key.toLowerCase() !== wanted) continue;
    return Array.isArray(value) ? value : [value];
  }
  return [];
}

export function stringsOf(entry: Entry, attribute: string): string[] {
  return valuesOf(entry, attribute).map((value) => (Buffer.isBuffer(value) ? value.toString('utf8') : value));
}

export function firstString(entry: Entry, attribute: string): string | null {
  const value = stringsOf(entry, attribute)
    .map((v) => v.trim())
    .find((v) => v.length > 0);
  return value ?? null;
}

/** The external id in its printed form; null when the entry lacks it or it is malformed. */
export function externalIdOf(entry: Entry, attribute: string, format: ExternalIdFormat): string | null {
  const value = valuesOf(entry, attribute)[0];
  if (value === undefined) return null;
  if (format === 'guid') return Buffer.isBuffer(value) ? formatGuid(value) : null;
  const text = (Buffer.isBuffer(value) ? value.toString('utf8') : value).trim();
  return text.length > 0 ? text : null;
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
