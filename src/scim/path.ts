/**
 * SCIM PATCH paths (RFC 7644 §3.5.2), read in one pass, and the value filters in them evaluated:
 *
 *   PATH      = attrPath / valuePath [subAttr]
 *   attrPath  = [URI ":"] ATTRNAME *1subAttr
 *   valuePath = attrPath "[" valFilter "]"
 *
 * Every path, and every attribute name of a path-less value (which names attributes the same
 * way), is read here before anything else sees it. scimmy's PatchOp is then handed only paths
 * without a value filter, so its filter lexer never runs on request text: its string pattern
 * backtracks exponentially on a run of backslashes (measured: 36 of them held the event loop for
 * 0.7 s, 42 for 12 s), and its path splitting is quadratic (80 KB of dots: 6 s).
 */
import type { Filter, FilterOperator, FilterValue } from '../membership/index.js';
import { ScimError } from './errors.js';
import { ATTRIBUTE_NAME, parseValueFilter } from './filter.js';

/** Room for a fully qualified attribute path (under 100 characters) filtered on an email address (up to 254). */
export const MAX_PATH_LENGTH = 512;

export interface PatchPath {
  /** The path as written; scimmy is handed it when it has no filter. */
  text: string;
  /** The schema URN before the attribute (`urn:…:enterprise:2.0:User`), as written. */
  urn: string | undefined;
  attribute: string;
  /** `givenName` in `name.givenName`, `value` in `emails[type eq "work"].value`. */
  subAttribute: string | undefined;
  /** The filter of a valuePath, over bare lower-cased sub-attribute names. */
  filter: Filter<string> | undefined;
}

/** RFC 8141 allows more in a URN, but no schema Portico serves uses more. */
const SCHEMA_URN = /^urn:[\w.:-]+$/i;

const shown = (text: string) => JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
const invalidPath = (text: string, why: string) => new ScimError(400, 'invalidPath', `Invalid path ${shown(text)}: ${why}`);

/** Reads one PATCH path; anything else is `invalidPath` (RFC 7644 §3.12). */
export function parsePatchPath(text: string): PatchPath {
  if (text.length > MAX_PATH_LENGTH) throw invalidPath(text, `a path is at most ${MAX_PATH_LENGTH} characters`);
  const open = text.indexOf('[');
  const head = open === -1 ? text : text.slice(0, open);
  // An ATTRNAME holds no colon, so a URI prefix ends at the last one.
  const colon = /^urn:/i.test(head) ? head.lastIndexOf(':') : -1;
  const urn = colon === -1 ? undefined : head.slice(0, colon);
  if (urn !== undefined && !SCHEMA_URN.test(urn)) throw invalidPath(text, 'the prefix is not a schema URN');
  const names = head.slice(colon + 1).split('.');
  if (names.length > 2 || !names.every((name) => ATTRIBUTE_NAME.test(name))) {
    throw invalidPath(text, 'expected an attribute name, then at most one sub-attribute');
  }
  const [attribute, subAttribute] = names as [string, string | undefined];
  if (open === -1) return { text, urn, attribute, subAttribute, filter: undefined };

  if (subAttribute !== undefined) throw invalidPath(text, 'a value filter selects values of an attribute, not of a sub-attribute');
  // A `]` inside a quoted comparison value belongs to the filter, which runs to the last one.
  const close = text.lastIndexOf(']');
  if (close < open) throw invalidPath(text, 'the value filter is not closed');
  const after = text.slice(close + 1);
  if (after !== '' && !(after.startsWith('.') && ATTRIBUTE_NAME.test(after.slice(1)))) {
    throw invalidPath(text, 'only a sub-attribute may follow a value filter');
  }
  return { text, urn, attribute, subAttribute: after === '' ? undefined : after.slice(1), filter: valueFilter(text, text.slice(open + 1, close)) };
}

function valueFilter(path: string, text: string): Filter<string> {
  try {
    return parseValueFilter(text);
  } catch (error) {
    if (error instanceof ScimError) throw invalidPath(path, error.message);
    throw error;
  }
}

/** The sub-attribute names a value filter compares, for checking against the schema. */
export function filterAttributes(filter: Filter<string>): string[] {
  if ('always' in filter) return [];
  if ('and' in filter) return filter.and.flatMap(filterAttributes);
  if ('or' in filter) return filter.or.flatMap(filterAttributes);
  if ('not' in filter) return filterAttributes(filter.not);
  return [filter.attribute];
}

/**
 * Whether one value of a multi-valued attribute satisfies a value filter (RFC 7644 §3.4.2.2).
 * Sub-attribute names compare case-insensitively (RFC 7643 §2.1), and so do strings unless
 * `caseExact` says the sub-attribute is case-exact (RFC 7643 §2.2).
 */
export function matchesValueFilter(filter: Filter<string>, value: unknown, caseExact: (subAttribute: string) => boolean): boolean {
  if ('always' in filter) return filter.always;
  if ('and' in filter) return filter.and.every((f) => matchesValueFilter(f, value, caseExact));
  if ('or' in filter) return filter.or.some((f) => matchesValueFilter(f, value, caseExact));
  if ('not' in filter) return !matchesValueFilter(filter.not, value, caseExact);
  return compare(subAttributeOf(value, filter.attribute), filter.op, filter.value, caseExact(filter.attribute));
}

function subAttributeOf(value: unknown, name: string): unknown {
  if (typeof value !== 'object' || value === null) return undefined;
  const key = Object.keys(value).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : (value as Record<string, unknown>)[key];
}

function compare(actual: unknown, op: FilterOperator, expected: FilterValue | undefined, caseExact: boolean): boolean {
  if (op === 'pr') return actual !== undefined && actual !== null && actual !== '' && !(Array.isArray(actual) && actual.length === 0);
  const fold = (v: unknown) => (typeof v === 'string' && !caseExact ? v.toLowerCase() : v);
  const a = fold(actual ?? null);
  const e = fold(expected ?? null);
  switch (op) {
    case 'eq':
      return a === e;
    case 'ne':
      return a !== e;
    case 'co':
      return typeof a === 'string' && typeof e === 'string' && a.includes(e);
    case 'sw':
      return typeof a === 'string' && typeof e === 'string' && a.startsWith(e);
    case 'ew':
      return typeof a === 'string' && typeof e === 'string' && a.endsWith(e);
  }
  // gt, ge, lt, le: strings (ISO dates among them) lexically, numbers numerically; nothing else orders.
  if (typeof a !== typeof e || (typeof a !== 'string' && typeof a !== 'number')) return false;
  const order = a === e ? 0 : (a as string) < (e as string) ? -1 : 1;
  return op === 'gt' ? order > 0 : op === 'ge' ? order >= 0 : op === 'lt' ? order < 0 : order <= 0;
}
