/**
 * What IdPs really send, made into what RFC 7643/7644 (and scimmy) expect. Each rule cites the
 * quirk in docs/idp-behaviour.md.
 */
import { isStorableText } from '../membership/index.js';
import { ScimError } from './errors.js';
import { parsePatchPath, type PatchPath } from './path.js';
import { CORE_GROUP, CORE_USER, ENTERPRISE_USER, GROUP_ATTRIBUTES, PATCH_OP, USER_ATTRIBUTES } from './schemas.js';

type Json = Record<string, unknown>;

/** OneLogin templates use legacy URNs (idp-behaviour.md, OneLogin). */
const LEGACY_URNS: Record<string, string> = {
  'urn:scim:schemas:core:2.0': 'core',
  'urn:scim:schemas:core:1.0': 'core',
  'urn:scim:schemas:extension:enterprise:2.0': ENTERPRISE_USER,
  'urn:scim:schemas:extension:enterprise:1.0': ENTERPRISE_USER,
};

/** Read-only or write-only attributes an IdP sends back and we must ignore (Okta PUT sends id, meta, groups, password). */
const IGNORED = new Set(['id', 'meta', 'groups', 'password', 'schemas']);

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Entra sends `"False"`, OneLogin `"true"`: booleans as strings (idp-behaviour.md). */
export function coerceBoolean(value: unknown): unknown {
  if (typeof value === 'string' && /^(true|false)$/i.test(value)) return value.toLowerCase() === 'true';
  return value;
}

/** Drops nulls (unassigned, RFC 7643 §2.5) and coerces string booleans of `active`/`primary`, recursively. */
function clean(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.filter((v) => v !== null).map((v) => clean(v));
  if (isObject(value)) {
    const out: Json = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === null) continue;
      out[k] = clean(v, k);
    }
    return out;
  }
  return key === 'active' || key === 'primary' ? coerceBoolean(value) : value;
}

/**
 * A User or Group body as scimmy's schema accepts it: canonical schema URNs, legacy URN keys
 * renamed, `emails` as an object wrapped, a bare-string manager wrapped, read-only attributes and
 * unknown extension URNs dropped. Unknown core attributes are refused (`invalidSyntax`).
 */
export function normalizeResource(kind: 'User' | 'Group', body: unknown): Json {
  if (!isObject(body)) throw new ScimError(400, 'invalidSyntax', `The request body must be a ${kind} object`);
  requireCoreSchema(kind, body.schemas);
  return normalizeAttributes(kind, body);
}

/**
 * RFC 7644 §3.3, §3.5.1: a resource body's `schemas` names its core schema. OneLogin's legacy
 * core URNs count (idp-behaviour.md, OneLogin); URNs compare case-insensitively.
 */
function requireCoreSchema(kind: 'User' | 'Group', schemas: unknown): void {
  const core = (kind === 'User' ? CORE_USER : CORE_GROUP).toLowerCase();
  const names = Array.isArray(schemas) ? schemas.filter((s): s is string => typeof s === 'string').map((s) => s.toLowerCase()) : [];
  if (!names.some((name) => name === core || LEGACY_URNS[name] === 'core')) {
    throw new ScimError(400, 'invalidSyntax', `schemas must list ${kind === 'User' ? CORE_USER : CORE_GROUP}`);
  }
}

function normalizeAttributes(kind: 'User' | 'Group', body: Json): Json {
  const core = kind === 'User' ? CORE_USER : CORE_GROUP;
  const known = kind === 'User' ? USER_ATTRIBUTES : GROUP_ATTRIBUTES;
  const out: Json = {};
  for (const [rawKey, rawValue] of Object.entries(clean(body) as Json)) {
    const key = LEGACY_URNS[rawKey] === ENTERPRISE_USER ? ENTERPRISE_USER : rawKey;
    if (IGNORED.has(key)) continue;
    if (LEGACY_URNS[key] === 'core' || key === core) {
      // A core-URN-wrapped body: lift its attributes to the top.
      if (isObject(rawValue)) Object.assign(out, normalizeAttributes(kind, rawValue));
      continue;
    }
    if (key.startsWith('urn:')) {
      if (kind === 'User' && key === ENTERPRISE_USER && isObject(rawValue)) out[key] = normalizeEnterprise(rawValue);
      // Other extensions (IdP-specific) are not ours to keep.
      continue;
    }
    if (!known.has(key.toLowerCase())) {
      throw new ScimError(400, 'invalidSyntax', `Unknown attribute ${key} for a ${kind}`);
    }
    out[key] = key === 'emails' && isObject(rawValue) ? [rawValue] : rawValue;
  }
  for (const [key, value] of Object.entries(out)) requireStorableText(value, `${kind} attribute ${key}`);
  out.schemas = out[ENTERPRISE_USER] ? [core, ENTERPRISE_USER] : [core];
  return out;
}

/**
 * Refuses text the database cannot store as given, in any key or string of `value`: PostgreSQL text
 * cannot hold NUL, and an unpaired surrogate has no UTF-8 form (jsonb, which keeps the profile,
 * refuses its escape). Answered 400 invalidValue, before anything is written.
 */
function requireStorableText(value: unknown, what: string): void {
  const unstorable = (v: unknown): boolean => {
    if (typeof v === 'string') return !isStorableText(v);
    if (Array.isArray(v)) return v.some(unstorable);
    return isObject(v) && Object.entries(v).some(([k, inner]) => !isStorableText(k) || unstorable(inner));
  };
  if (unstorable(value)) throw new ScimError(400, 'invalidValue', `${what} holds NUL or an unpaired surrogate`);
}

/** Entra sends the manager as a bare id string (idp-behaviour.md, Entra). */
function normalizeEnterprise(value: Json): Json {
  const manager = value.manager;
  return typeof manager === 'string' ? { ...value, manager: { value: manager } } : value;
}

export interface PatchOperation {
  op: 'add' | 'remove' | 'replace';
  path?: PatchPath;
  value?: unknown;
}

/**
 * A PatchOp body with op names lower-cased (Entra sends `Replace`), string booleans coerced,
 * a bare-string manager wrapped, and read-only attributes dropped from no-path values (Okta sends
 * `id` in a rename). Legacy enterprise URNs in paths are made canonical, then every path, and
 * every attribute name of a no-path value, is read by `parsePatchPath`.
 */
export function normalizePatch(body: unknown): PatchOperation[] {
  if (!isObject(body)) throw new ScimError(400, 'invalidSyntax', 'A PatchOp body must be an object');
  // RFC 7644 §3.5.2: "The body of each request MUST contain the "schemas" attribute with the URI
  // value of PATCH_OP". Anything else is not a PatchOp, and is refused before it changes anything.
  const { schemas } = body;
  if (!Array.isArray(schemas) || schemas.length !== 1 || typeof schemas[0] !== 'string' || schemas[0].toLowerCase() !== PATCH_OP.toLowerCase()) {
    throw new ScimError(400, 'invalidSyntax', `A PatchOp body's schemas must be exactly ["${PATCH_OP}"]`);
  }
  if (!Array.isArray(body.Operations) && !Array.isArray(body.operations)) {
    throw new ScimError(400, 'invalidSyntax', 'A PatchOp body needs an Operations array');
  }
  const operations = (body.Operations ?? body.operations) as unknown[];
  if (operations.length === 0) throw new ScimError(400, 'invalidSyntax', 'Operations must not be empty');
  if (operations.length > 1000) throw new ScimError(400, 'tooMany', 'At most 1000 operations per request');
  return operations.map((raw, index) => {
    if (!isObject(raw) || typeof raw.op !== 'string') {
      throw new ScimError(400, 'invalidSyntax', `Operation ${index + 1} needs an op`);
    }
    const op = raw.op.toLowerCase();
    if (op !== 'add' && op !== 'remove' && op !== 'replace') {
      throw new ScimError(400, 'invalidSyntax', `Operation ${index + 1} has an unknown op ${raw.op}`);
    }
    let text = typeof raw.path === 'string' && raw.path.trim() !== '' ? raw.path.trim() : undefined;
    for (const [legacy, canonical] of Object.entries(LEGACY_URNS)) {
      if (canonical !== 'core' && text?.startsWith(`${legacy}:`)) text = `${canonical}${text.slice(legacy.length)}`;
    }
    const path = text === undefined ? undefined : parsePatchPath(text);
    let value = raw.value;
    if (path === undefined && isObject(value)) {
      value = Object.fromEntries(
        Object.entries(clean(value) as Json)
          .filter(([k]) => !IGNORED.has(k))
          .map(([k, v]) => [k, k === ENTERPRISE_USER && isObject(v) ? normalizeEnterprise(v) : k.endsWith(':manager') && typeof v === 'string' ? { value: v } : v]),
      );
      // The value holds attributes (RFC 7644 §3.5.2.1, §3.5.2.3), which Entra names by path
      // (`name.givenName`), never by value filter.
      for (const key of Object.keys(value as Json)) {
        if (parsePatchPath(key).filter) {
          throw new ScimError(400, 'invalidPath', `Operation ${index + 1}: a value without a path names attributes, not value filters`);
        }
      }
    } else if (path !== undefined) {
      const last = (path.subAttribute ?? path.attribute).toLowerCase();
      if (last === 'active' || last === 'primary') value = coerceBoolean(value);
      else if (last === 'manager' && typeof value === 'string') value = { value };
      else if (value !== null && value !== undefined) value = clean(value);
    }
    requireStorableText(value, `The value of operation ${index + 1}`);
    const operation: PatchOperation = { op };
    if (path !== undefined) operation.path = path;
    if (value !== undefined && value !== null) operation.value = value;
    return operation;
  });
}
