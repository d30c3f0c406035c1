/**
 * SCIM Users and Groups as views of organization members and groups: rendering, the reading of
 * request bodies into engine inputs, and the operations the router calls. Every write goes
 * through the engine, attributed to the SCIM system actor.
 */
import { isDeepStrictEqual } from 'node:util';
import SCIMMY from 'scimmy';
import { DomainError, type Filter, type FilterValue, type Group, type Member, type OrganizationHandle } from '../membership/index.js';
import { ScimError, type ScimType } from './errors.js';
import { normalizePatch, normalizeResource, type PatchOperation } from './normalize.js';
import { filterAttributes, matchesValueFilter, parsePatchPath, type PatchPath } from './path.js';
import { CORE_GROUP, CORE_USER, ENTERPRISE_USER, GroupSchema, PATCH_OP, UserSchema } from './schemas.js';

type Json = Record<string, unknown>;

/** Validates and coerces a normalised body with scimmy's schema (types, required attributes). */
function coerce(schema: typeof UserSchema | typeof GroupSchema, doc: Json): Json {
  try {
    const instance = new schema(doc, 'in');
    const plain = JSON.parse(JSON.stringify(instance)) as Json;
    delete plain.meta;
    return plain;
  } catch (error) {
    if (error instanceof SCIMMY.Types.Error) throw error;
    throw new ScimError(400, 'invalidValue', (error as Error).message);
  }
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const isAddress = (text: string) => EMAIL.test(text) && text.length <= 254;

/** Long enough for any UPN or login name an IdP sends (Entra's UPN is at most 113 characters). */
const MAX_USER_NAME_LENGTH = 256;

// ---- users ------------------------------------------------------------------------------------

interface UserFields {
  /** The SCIM userName as sent (trimmed): any non-empty string, unique per organization. */
  userName: string;
  /** The address `emails` names (primary, else work, else the first), lower-cased; undefined without emails. */
  emailsAddress: string | undefined;
  externalId: string | null;
  name: string | null;
  active: boolean | undefined;
  /** Everything else the IdP sent that the User schema knows, kept to render it back. */
  profile: Json;
}

/**
 * Reads a coerced User document into member fields. `userName` and the member's email are two
 * things (Entra sends the UPN as userName and the mailbox in `emails`; others send `jsmith`): the
 * email Portico invites and matches people by comes from `emails`, or else from a userName that
 * is an address (see `addressOf`).
 */
function readUser(doc: Json): UserFields {
  const userName = typeof doc.userName === 'string' ? doc.userName.trim() : '';
  if (userName === '' || userName.length > MAX_USER_NAME_LENGTH) {
    throw new ScimError(400, 'invalidValue', `userName is required: a non-empty string of at most ${MAX_USER_NAME_LENGTH} characters`);
  }
  const { schemas: _schemas, id: _id, userName: _userName, externalId, active, ...profile } = doc;
  const name = profile.name as { formatted?: string; givenName?: string; familyName?: string } | undefined;
  const display =
    (profile.displayName as string | undefined) ??
    name?.formatted ??
    ([name?.givenName, name?.familyName].filter(Boolean).join(' ') || undefined);
  return {
    userName,
    emailsAddress: addressOfEmails(profile.emails),
    externalId: typeof externalId === 'string' && externalId !== '' ? externalId : null,
    name: display ?? null,
    active: typeof active === 'boolean' ? active : undefined,
    profile,
  };
}

/** The address of `emails` Portico mails: the primary one, else the first of type work, else the first (RFC 7643 §4.1.2). */
function addressOfEmails(emails: unknown): string | undefined {
  if (!Array.isArray(emails) || emails.length === 0) return undefined;
  const list = emails as { value?: unknown; type?: unknown; primary?: unknown }[];
  const chosen =
    list.find((e) => e.primary === true) ?? list.find((e) => typeof e.type === 'string' && e.type.toLowerCase() === 'work') ?? list[0]!;
  const value = typeof chosen.value === 'string' ? chosen.value.trim() : '';
  if (!isAddress(value)) throw new ScimError(400, 'invalidValue', 'The primary (else work, else first) value of emails must be an email address');
  return value.toLowerCase();
}

/**
 * The member's email for a User document: from `emails`; without them, an existing member keeps
 * its email (changing userName alone never moves the mailbox) and a new one takes a userName
 * that is an address. Neither is refused, saying what to send.
 */
function addressOf(fields: UserFields, current: Member | undefined): string {
  if (fields.emailsAddress !== undefined) return fields.emailsAddress;
  if (current) return current.email;
  if (isAddress(fields.userName)) return fields.userName.toLowerCase();
  throw new ScimError(
    400,
    'invalidValue',
    'A user needs an email address: send emails [{"value": "<address>", "type": "work", "primary": true}], or a userName that is an email address',
  );
}

/**
 * What a member shows that it never stored: a member invited through the API or by directory
 * sync (or created through SCIM without `emails`) shows its email as its one work and primary
 * address, and its name as displayName and name.formatted when the profile has no name; so an
 * IdP's first import (Okta reads `name` and `emails[0]`) sees every member whole.
 */
function userDefaults(member: Member): Json {
  const profile = (member.profile ?? {}) as Json;
  const defaults: Json = {};
  if (!Array.isArray(profile.emails) || profile.emails.length === 0) defaults.emails = [{ value: member.email, type: 'work', primary: true }];
  if (member.name && profile.displayName === undefined && profile.name === undefined) {
    defaults.displayName = member.name;
    defaults.name = { formatted: member.name };
  }
  return defaults;
}

export function renderUser(member: Member, groups: { id: string; name: string }[], baseUrl: string): Json {
  const profile = (member.profile ?? {}) as Json;
  const doc: Json = {
    schemas: profile[ENTERPRISE_USER] ? [CORE_USER, ENTERPRISE_USER] : [CORE_USER],
    id: member.id,
    ...(member.externalId ? { externalId: member.externalId } : {}),
    ...userDefaults(member),
    ...profile,
    userName: member.userName ?? member.email,
    active: member.status !== 'revoked',
    groups: groups.map((g) => ({ value: g.id, display: g.name, $ref: `${baseUrl}/Groups/${g.id}` })),
    meta: {
      resourceType: 'User',
      created: member.createdAt,
      lastModified: member.updatedAt,
      location: `${baseUrl}/Users/${member.id}`,
    },
  };
  if ((doc.groups as unknown[]).length === 0) delete doc.groups;
  return doc;
}

export async function loadUser(org: OrganizationHandle, id: string, baseUrl: string): Promise<Json> {
  const member = await org.getMember(id);
  const groups = (await org.groupsOfMembers([member.id])).get(member.id) ?? [];
  return renderUser(member, groups, baseUrl);
}

/** POST /Users: an invited member with role user and the invitation mail; `active:false` revokes it. */
export async function createUser(org: OrganizationHandle, body: unknown, baseUrl: string): Promise<Json> {
  const fields = readUser(coerce(UserSchema, normalizeResource('User', body)));
  const email = addressOf(fields, undefined);
  await checkManager(org, fields.profile, undefined);
  const { invited } = await org.inviteMembers({
    emails: [email],
    userName: fields.userName,
    role: 'user',
    externalId: fields.externalId ?? undefined,
    name: fields.name ?? undefined,
    profile: fields.profile,
    onExisting: 'conflict',
  });
  let member = invited[0]!;
  if (fields.active === false) member = await org.revokeMember(member.id);
  return renderUser(member, [], baseUrl);
}

const managerOf = (profile: Json | null | undefined): unknown =>
  ((profile?.[ENTERPRISE_USER] as Json | undefined)?.manager as Json | undefined)?.value;

/**
 * The enterprise `manager.value` names a user of this organization (RFC 7643 §4.3: "The id of the
 * SCIM resource representing the User's manager"); any other id is refused, never stored. A manager
 * unchanged since it was stored is not looked up again, so a later removal of that manager does
 * not block updates of the people it managed.
 */
async function checkManager(org: OrganizationHandle, profile: Json, current: Json | null | undefined): Promise<void> {
  const manager = managerOf(profile);
  if (manager === undefined || manager === null || manager === '' || manager === managerOf(current)) return;
  const refused = () => new ScimError(400, 'invalidValue', 'manager.value must be the id of a user of this organization');
  if (typeof manager !== 'string') throw refused();
  try {
    await org.getMember(manager);
  } catch (error) {
    if (error instanceof DomainError && error.code === 'member.not_found') throw refused();
    throw error;
  }
}

/** Brings a member to the state of a User document: attributes first, then revoke or restore. */
async function applyUser(org: OrganizationHandle, current: Member, fields: UserFields, baseUrl: string): Promise<Json> {
  await checkManager(org, fields.profile, current.profile);
  // Attributes the member shows without having stored them stay unstored while they are as shown.
  const profile = { ...fields.profile };
  for (const [key, shown] of Object.entries(userDefaults(current))) {
    if (isDeepStrictEqual(profile[key], shown)) delete profile[key];
  }
  const changes: Parameters<OrganizationHandle['updateMember']>[1] = {};
  const email = addressOf(fields, current);
  if (email !== current.email) changes.email = email;
  // A member without a userName of its own shows its email: when the mailbox moves, the userName stays.
  if (fields.userName !== (current.userName ?? current.email) || (changes.email !== undefined && current.userName === null)) {
    changes.userName = fields.userName;
  }
  if (fields.externalId !== current.externalId) changes.externalId = fields.externalId;
  if (fields.name !== current.name) changes.name = fields.name;
  // Not JSON.stringify: jsonb hands the stored profile back in its own key order, so an unchanged
  // profile would count as a change (a member.updated event and a new lastModified on every PATCH).
  if (!isDeepStrictEqual(profile, current.profile ?? {})) changes.profile = profile;
  if (Object.keys(changes).length > 0) await org.updateMember(current.id, changes);
  if (fields.active === true && current.status === 'revoked') await org.restoreMember(current.id);
  if (fields.active === false && current.status !== 'revoked') await org.revokeMember(current.id);
  return loadUser(org, current.id, baseUrl);
}

/**
 * PUT /Users/:id replaces the user: omitted attributes are cleared. `id`, `meta`, `groups` and
 * `password` are tolerated and ignored (Okta sends them). An omitted `active` keeps the status.
 */
export async function replaceUser(org: OrganizationHandle, id: string, body: unknown, baseUrl: string): Promise<Json> {
  const current = await org.getMember(id);
  const fields = readUser(coerce(UserSchema, normalizeResource('User', body)));
  return applyUser(org, current, fields, baseUrl);
}

/** An operation and its number in the request, for messages. */
interface NumberedOperation<O extends PatchOperation = PatchOperation> {
  operation: O;
  n: number;
}

type PathOperation = PatchOperation & { path: PatchPath };

/**
 * PATCH /Users/:id: the operations, after IdP normalisation, applied to the current document
 * (RFC 7644 §3.5.2) in two sets. Those on multi-valued attributes (`emails`,
 * `emails[type eq "work"].value`, Entra's value-form remove) are applied here; the rest go, in
 * order, through one scimmy PatchOp. The two sets touch different attributes, so applying one
 * after the other is applying all in order. This way no value filter, nor any name a client put
 * in a value, reaches scimmy's filter lexer (path.ts says why), and a 1,000-operation PATCH
 * builds scimmy's schema objects a fixed number of times (~0.5 ms each).
 */
export async function patchUser(org: OrganizationHandle, id: string, body: unknown, baseUrl: string): Promise<Json> {
  // The body is read before the member: a malformed one costs no query.
  const operations = normalizePatch(body);
  const current = await org.getMember(id);
  const document = renderUser(current, [], baseUrl);
  delete document.groups;
  const viaScimmy: NumberedOperation[] = [];
  const ours: NumberedOperation<PathOperation>[] = [];
  for (const [index, whole] of operations.entries()) {
    for (const operation of splitNoPathValue(whole)) {
      if (onMultiValued(operation)) ours.push({ operation, n: index + 1 });
      else viaScimmy.push({ operation, n: index + 1 });
    }
  }
  let patched = viaScimmy.length > 0 ? await applyWithScimmy(document, viaScimmy) : structuredClone(document);
  for (const { operation, n } of ours) applyToMultiValued(patched, operation, n);
  if (ours.length > 0) patched = JSON.parse(JSON.stringify(coerceUser(patched))) as Json;
  delete patched.meta;
  return applyUser(org, current, readUser(patched), baseUrl);
}

/** A User document through scimmy's schema, which checks every attribute's type: a mismatch is the client's. */
function coerceUser(document: Json): InstanceType<typeof UserSchema> {
  try {
    return new UserSchema(document, 'out');
  } catch (error) {
    throw new ScimError(400, 'invalidValue', (error as Error).message);
  }
}

/** The attribute a path names, without its sub-attribute, if the User schema has it. */
function userAttribute(path: PatchPath): SCIMMY.Types.Attribute | undefined {
  try {
    const found = UserSchema.definition.attribute(path.urn ? `${path.urn}:${path.attribute}` : path.attribute);
    return found instanceof SCIMMY.Types.Attribute ? found : undefined;
  } catch {
    return undefined;
  }
}

/** Whether an operation is one `applyToMultiValued` takes: any with a value filter is. */
function onMultiValued(operation: PatchOperation): operation is PathOperation {
  const { path } = operation;
  return path !== undefined && (path.filter !== undefined || userAttribute(path)?.config.multiValued === true);
}

/**
 * A path-less add or replace whose value names multi-valued attributes, as one operation at each
 * of their paths and one path-less operation for the rest: the value holds attributes, each
 * added or replaced at its own path (RFC 7644 §3.5.2.1, §3.5.2.3).
 */
function splitNoPathValue(operation: PatchOperation): PatchOperation[] {
  const { op, path, value } = operation;
  if (op === 'remove' || path !== undefined || typeof value !== 'object' || value === null || Array.isArray(value)) return [operation];
  const rest: Json = {};
  const split: PatchOperation[] = [];
  for (const [key, v] of Object.entries(value)) {
    const part = { op, path: parsePatchPath(key), value: v };
    if (onMultiValued(part)) split.push(part);
    else rest[key] = v;
  }
  if (split.length === 0) return [operation];
  return Object.keys(rest).length > 0 ? [{ op, value: rest }, ...split] : split;
}

/** Operations in order through one scimmy PatchOp, whose messages count its own operations: they are renumbered. */
async function applyWithScimmy(document: Json, numbered: NumberedOperation[]): Promise<Json> {
  const resource = new UserSchema(document, 'out');
  try {
    const patch = new SCIMMY.Messages.PatchOp({
      schemas: [PATCH_OP],
      Operations: numbered.map(({ operation: { op, path, value } }) => ({
        op,
        ...(path ? { path: path.text } : {}),
        ...(value !== undefined ? { value } : {}),
      })),
    });
    return JSON.parse(JSON.stringify((await patch.apply(resource)) ?? resource)) as Json;
  } catch (error) {
    if (error instanceof SCIMMY.Types.Error) {
      error.message = error.message.replace(/\boperation (\d+) in PatchOp\b/, (_, k: string) => `operation ${numbered[Number(k) - 1]?.n ?? k} in PatchOp`);
    }
    throw error;
  }
}

/**
 * An operation on a multi-valued complex attribute (RFC 7644 §3.5.2), applied to `document`.
 * On the whole attribute, add appends values, replace replaces them all, and remove removes them
 * all, or only those equal to a listed value on every sub-attribute it gives (Entra's value form).
 * With a value filter or a sub-attribute, the values the filter selects (all, without one) are
 * the target: add and replace set the sub-attribute of each, or add merges into each and replace
 * puts the new values where they were; remove removes the sub-attribute or the values. Add and
 * replace that select nothing answer `noTarget` (§3.5.2.3). The attribute is checked against
 * the schema here, the document whole afterwards.
 */
function applyToMultiValued(document: Json, operation: PathOperation, n: number): void {
  const { op, path, value } = operation;
  const refuse = (scimType: ScimType, why: string) =>
    new ScimError(400, scimType, `${why} for '${op}' op of operation ${n} in PatchOp request body`);

  const attribute = userAttribute(path);
  if (!attribute?.config.multiValued || !attribute.subAttributes) {
    throw refuse('invalidPath', `${path.text} does not name a multi-valued complex attribute`);
  }
  if (attribute.config.mutable !== true) throw refuse('mutability', `${attribute.name} is read-only`);
  const subAttributes = attribute.subAttributes;
  const subAttribute = (name: string) => subAttributes.find((a) => a.name.toLowerCase() === name.toLowerCase());
  const sub = path.subAttribute === undefined ? undefined : subAttribute(path.subAttribute);
  if (path.subAttribute !== undefined && !sub) throw refuse('invalidPath', `${attribute.name} has no sub-attribute ${path.subAttribute}`);
  if (op !== 'remove' && value === undefined) throw refuse('invalidValue', 'A value is required');

  const whole = !path.filter && !sub;
  const listed = (Array.isArray(value) ? value : [value]) as Json[];
  const filter: Filter<string> =
    path.filter ??
    (whole && value !== undefined
      ? filterOfListedValues(listed, () => refuse('invalidValue', `Values to remove from ${attribute.name} are objects of sub-attribute values`))
      : { always: true });
  for (const name of filterAttributes(filter)) {
    if (!subAttribute(name)) throw refuse(path.filter ? 'invalidPath' : 'invalidValue', `${attribute.name} has no sub-attribute ${name}`);
  }
  const selects = (v: unknown) => matchesValueFilter(filter, v, (name) => subAttribute(name)?.config.caseExact === true);

  const values = Array.isArray(document[attribute.name]) ? (document[attribute.name] as Json[]) : [];
  let result: Json[];
  if (op === 'remove') {
    result = sub ? values.map((v) => (selects(v) ? withoutKey(v, sub.name) : v)) : values.filter((v) => !selects(v));
  } else if (whole) {
    result = op === 'add' ? [...values, ...listed] : listed;
  } else {
    const first = values.findIndex(selects);
    if (first === -1) throw refuse('noTarget', `${path.text} selects no value`);
    if (sub) {
      result = values.map((v) => (selects(v) ? { ...v, [sub.name]: value } : v));
    } else if (op === 'replace') {
      result = values.flatMap((v, i) => (i === first ? listed : selects(v) ? [] : [v]));
    } else {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw refuse('invalidValue', `Adding to ${path.text} takes an object of sub-attributes`);
      result = values.map((v) => (selects(v) ? { ...v, ...value } : v));
    }
  }
  try {
    attribute.coerce(result, 'out');
  } catch (error) {
    throw refuse('invalidValue', (error as Error).message);
  }
  if (result.length === 0) delete document[attribute.name];
  else document[attribute.name] = result;
}

/** Entra's value-form remove as a filter: a value is removed when it equals a listed one on every sub-attribute given. */
function filterOfListedValues(listed: unknown[], refused: () => ScimError): Filter<string> {
  return {
    or: listed.map((entry) => {
      const pairs = typeof entry === 'object' && entry !== null && !Array.isArray(entry) ? Object.entries(entry) : [];
      if (pairs.length === 0 || pairs.some(([, v]) => v !== null && typeof v === 'object')) throw refused();
      return { and: pairs.map(([name, v]) => ({ attribute: name.toLowerCase(), op: 'eq' as const, value: v as FilterValue })) };
    }),
  };
}

const withoutKey = (value: Json, key: string): Json => Object.fromEntries(Object.entries(value).filter(([k]) => k !== key));

// ---- groups -----------------------------------------------------------------------------------

interface GroupFields {
  name: string;
  externalId: string | null;
  members: string[] | undefined;
}

function readGroup(doc: Json): GroupFields {
  const name = String(doc.displayName ?? '').trim();
  if (!name || name.length > 200) throw new ScimError(400, 'invalidValue', 'displayName is required (at most 200 characters)');
  const members = Array.isArray(doc.members) ? (doc.members as { value?: string }[]).map(memberValue) : undefined;
  return { name, externalId: typeof doc.externalId === 'string' && doc.externalId !== '' ? doc.externalId : null, members };
}

function memberValue(entry: { value?: unknown }): string {
  if (typeof entry?.value !== 'string' || entry.value === '') {
    throw new ScimError(400, 'invalidValue', 'Each member needs a value: the member id');
  }
  return entry.value;
}

export function renderGroup(
  group: Pick<Group, 'id' | 'name' | 'externalId' | 'createdAt' | 'updatedAt'>,
  members: { id: string; email: string }[] | undefined,
  baseUrl: string,
): Json {
  return {
    schemas: [CORE_GROUP],
    id: group.id,
    displayName: group.name,
    ...(group.externalId ? { externalId: group.externalId } : {}),
    ...(members
      ? { members: members.map((m) => ({ value: m.id, display: m.email, $ref: `${baseUrl}/Users/${m.id}`, type: 'User' })) }
      : {}),
    meta: {
      resourceType: 'Group',
      created: group.createdAt,
      lastModified: group.updatedAt,
      location: `${baseUrl}/Groups/${group.id}`,
    },
  };
}

export async function loadGroup(org: OrganizationHandle, id: string, baseUrl: string, withMembers = true): Promise<Json> {
  const group = await org.getGroup(id);
  const members = withMembers ? ((await org.membersOfGroups([group.id])).get(group.id) ?? []) : undefined;
  return renderGroup(group, members, baseUrl);
}

export async function createGroup(org: OrganizationHandle, body: unknown, baseUrl: string): Promise<Json> {
  const fields = readGroup(coerce(GroupSchema, normalizeResource('Group', body)));
  const group = await org.createGroup({ name: fields.name, externalId: fields.externalId, members: fields.members ?? [] });
  return loadGroup(org, group.id, baseUrl);
}

export async function replaceGroup(org: OrganizationHandle, id: string, body: unknown, baseUrl: string): Promise<Json> {
  const fields = readGroup(coerce(GroupSchema, normalizeResource('Group', body)));
  await org.updateGroup(id, { name: fields.name, externalId: fields.externalId, members: fields.members ?? [] });
  return loadGroup(org, id, baseUrl);
}

/** The effect of a group PatchOp, folded in order: attribute changes and member adds/removes. */
interface GroupChange {
  name?: string;
  externalId?: string | null;
  /** A full replacement of the member set, when an op asked for one. */
  replace?: Set<string>;
  add: Set<string>;
  remove: Set<string>;
}

/**
 * PATCH /Groups/:id. Member changes become row inserts and deletes (never a read-modify-write of
 * the whole group), so concurrent PATCHes all land, redundant adds never duplicate, and a
 * value-form remove removes only the named members (idp-behaviour.md: Entra, Okta, JumpCloud).
 */
export async function patchGroup(org: OrganizationHandle, id: string, body: unknown): Promise<void> {
  const change: GroupChange = { add: new Set(), remove: new Set() };
  for (const operation of normalizePatch(body)) foldGroupOperation(change, operation);
  const group = await org.getGroup(id);
  const attributes = {
    ...(change.name !== undefined && change.name !== group.name ? { name: change.name } : {}),
    ...(change.externalId !== undefined ? { externalId: change.externalId } : {}),
  };
  if (change.replace) {
    const members = new Set(change.replace);
    for (const m of change.add) members.add(m);
    for (const m of change.remove) members.delete(m);
    await org.updateGroup(group.id, { ...attributes, members: [...members] });
    return;
  }
  if (Object.keys(attributes).length > 0) await org.updateGroup(group.id, attributes);
  if (change.add.size > 0 || change.remove.size > 0) {
    await org.changeGroupMembers(group.id, { add: [...change.add], remove: [...change.remove] });
  }
}

function foldGroupOperation(change: GroupChange, operation: PatchOperation): void {
  const { op, path, value } = operation;
  const add = (ids: string[]) => ids.forEach((m) => (change.remove.delete(m), change.add.add(m)));
  const remove = (ids: string[]) => ids.forEach((m) => (change.add.delete(m), change.remove.add(m)));
  const replaceAll = (ids: string[]) => {
    change.replace = new Set(ids);
    change.add.clear();
    change.remove.clear();
  };
  const memberIds = (v: unknown): string[] => {
    if (v === undefined) return [];
    return (Array.isArray(v) ? v : [v]).map((entry) => memberValue(entry as { value?: unknown }));
  };

  if (path === undefined) {
    // RFC 7644 §3.5.2.2: a remove without a path is noTarget, whatever its value.
    if (op === 'remove') throw new ScimError(400, 'noTarget', 'A remove needs a path');
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ScimError(400, 'invalidValue', `A ${op} without a path needs an object value`);
    }
    for (const [key, v] of Object.entries(value as Json)) {
      foldGroupOperation(change, { op, path: parsePatchPath(key), value: v });
    }
    return;
  }

  const unsupported = () => new ScimError(400, 'invalidPath', `Unsupported path ${path.text} for a Group`);
  if (path.urn !== undefined && path.urn.toLowerCase() !== CORE_GROUP.toLowerCase()) throw unsupported();
  const name = path.attribute.toLowerCase();
  if (path.filter) {
    if (name !== 'members' || path.subAttribute) throw unsupported();
    if (op !== 'remove') throw new ScimError(400, 'invalidPath', 'Only remove takes a filtered members path');
    return remove(memberIdsOfFilter(path.filter));
  }
  if (name === 'meta' || (name === 'id' && !path.subAttribute)) return; // read-only attributes sent back: ignored.
  if (path.subAttribute) throw unsupported();
  if (name === 'displayname') {
    if (op === 'remove') throw new ScimError(400, 'mutability', 'displayName is required');
    if (typeof value !== 'string' || value.trim() === '') throw new ScimError(400, 'invalidValue', 'displayName must be a string');
    change.name = value.trim();
    return;
  }
  if (name === 'externalid') {
    if (op !== 'remove' && typeof value !== 'string') throw new ScimError(400, 'invalidValue', 'externalId must be a string');
    change.externalId = op === 'remove' ? null : (value as string);
    return;
  }
  if (name === 'members') {
    if (op === 'add') return add(memberIds(value));
    if (op === 'replace') return replaceAll(memberIds(value));
    // RFC 7644 §3.5.2.2: remove without a value removes every member; Entra's value form removes only those listed.
    return value === undefined ? replaceAll([]) : remove(memberIds(value));
  }
  throw unsupported();
}

/** `value eq "a"` or `value eq "a" or value eq "b"`: the ids a filtered members path names. */
function memberIdsOfFilter(filter: Filter<string>): string[] {
  if ('or' in filter) return filter.or.flatMap(memberIdsOfFilter);
  if ('attribute' in filter && filter.attribute === 'value' && filter.op === 'eq' && typeof filter.value === 'string') return [filter.value];
  throw new ScimError(400, 'invalidFilter', 'A members filter takes value eq "<id>" terms joined by or');
}
