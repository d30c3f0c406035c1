/**
 * SCIM Users and Groups as views of organization members and groups: rendering, the reading of
 * request bodies into engine inputs, and the operations the router calls. Every write goes
 * through the engine, attributed to the SCIM system actor.
 */
import { isDeepStrictEqual } from 'node:util';
import SCIMMY from 'scimmy';
import type { Group, Member, OrganizationHandle } from '../membership/index.js';
import { ScimError } from './errors.js';
import { normalizePatch, normalizeResource, type PatchOperation } from './normalize.js';
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

// ---- users ------------------------------------------------------------------------------------

interface UserFields {
  email: string;
  externalId: string | null;
  name: string | null;
  active: boolean | undefined;
  /** Everything else the IdP sent that the User schema knows, kept to render it back. */
  profile: Json;
}

/** Reads a coerced User document into member fields. Portico's member email is the userName. */
function readUser(doc: Json): UserFields {
  const userName = String(doc.userName ?? '').trim();
  if (!EMAIL.test(userName) || userName.length > 254) {
    throw new ScimError(400, 'invalidValue', 'userName must be an email address: it is the member email in Portico');
  }
  const { schemas: _schemas, id: _id, externalId, active, ...profile } = doc;
  const name = profile.name as { formatted?: string; givenName?: string; familyName?: string } | undefined;
  const display =
    (profile.displayName as string | undefined) ??
    name?.formatted ??
    ([name?.givenName, name?.familyName].filter(Boolean).join(' ') || undefined);
  return {
    email: userName.toLowerCase(),
    externalId: typeof externalId === 'string' && externalId !== '' ? externalId : null,
    name: display ?? null,
    active: typeof active === 'boolean' ? active : undefined,
    profile,
  };
}

export function renderUser(member: Member, groups: { id: string; name: string }[], baseUrl: string): Json {
  const profile = (member.profile ?? {}) as Json;
  const doc: Json = {
    schemas: profile[ENTERPRISE_USER] ? [CORE_USER, ENTERPRISE_USER] : [CORE_USER],
    id: member.id,
    ...(member.externalId ? { externalId: member.externalId } : {}),
    ...profile,
    userName: (profile.userName as string | undefined) ?? member.email,
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
  const { invited } = await org.inviteMembers({
    emails: [fields.email],
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

/** Brings a member to the state of a User document: attributes first, then revoke or restore. */
async function applyUser(org: OrganizationHandle, current: Member, fields: UserFields, baseUrl: string): Promise<Json> {
  const changes: Parameters<OrganizationHandle['updateMember']>[1] = {};
  if (fields.email !== current.email) changes.email = fields.email;
  if (fields.externalId !== current.externalId) changes.externalId = fields.externalId;
  if (fields.name !== current.name) changes.name = fields.name;
  // Not JSON.stringify: jsonb hands the stored profile back in its own key order, so an unchanged
  // profile would count as a change (a member.updated event and a new lastModified on every PATCH).
  if (!isDeepStrictEqual(fields.profile, current.profile ?? {})) changes.profile = fields.profile;
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

/** PATCH /Users/:id with scimmy's PatchOp applied to the current document, after IdP normalisation. */
export async function patchUser(org: OrganizationHandle, id: string, body: unknown, baseUrl: string): Promise<Json> {
  const current = await org.getMember(id);
  const operations = normalizePatch(body);
  const document = renderUser(current, [], baseUrl);
  delete document.groups;
  const resource = new UserSchema(document, 'out');
  const patch = new SCIMMY.Messages.PatchOp({ schemas: [PATCH_OP], Operations: operations });
  const patched = ((await patch.apply(resource)) ?? resource) as unknown as Json;
  const plain = JSON.parse(JSON.stringify(patched)) as Json;
  delete plain.meta;
  return applyUser(org, current, readUser(plain), baseUrl);
}

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
  const group = await org.getGroup(id);
  const change: GroupChange = { add: new Set(), remove: new Set() };
  for (const operation of normalizePatch(body)) foldGroupOperation(change, operation);
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
      foldGroupOperation(change, { op, path: key, value: v });
    }
    return;
  }

  const lower = path.toLowerCase().replace(`${CORE_GROUP.toLowerCase()}:`, '');
  if (lower === 'displayname') {
    if (op === 'remove') throw new ScimError(400, 'mutability', 'displayName is required');
    if (typeof value !== 'string' || value.trim() === '') throw new ScimError(400, 'invalidValue', 'displayName must be a string');
    change.name = value.trim();
    return;
  }
  if (lower === 'externalid') {
    if (op !== 'remove' && typeof value !== 'string') throw new ScimError(400, 'invalidValue', 'externalId must be a string');
    change.externalId = op === 'remove' ? null : (value as string);
    return;
  }
  if (lower === 'members') {
    if (op === 'add') return add(memberIds(value));
    if (op === 'replace') return replaceAll(memberIds(value));
    // RFC 7644 §3.5.2.2: remove without a value removes every member; Entra's value form removes only those listed.
    return value === undefined ? replaceAll([]) : remove(memberIds(value));
  }
  const filtered = /^members\[(.+)\]$/i.exec(path);
  if (filtered) {
    if (op !== 'remove') throw new ScimError(400, 'invalidPath', 'Only remove takes a filtered members path');
    return remove(memberIdsOfFilter(filtered[1]!));
  }
  if (lower === 'id' || lower.startsWith('meta')) return; // read-only attributes sent back: ignored.
  throw new ScimError(400, 'invalidPath', `Unsupported path ${path} for a Group`);
}

/** `value eq "a"` or `value eq "a" or value eq "b"`: the ids a filtered members path names. */
function memberIdsOfFilter(text: string): string[] {
  let expression: Json[];
  try {
    expression = new SCIMMY.Types.Filter(text) as unknown as Json[];
  } catch (error) {
    throw new ScimError(400, 'invalidFilter', (error as Error).message);
  }
  return expression.map((branch) => {
    const entry = branch.value as unknown[] | undefined;
    if (Object.keys(branch).length !== 1 || !Array.isArray(entry) || entry[0] !== 'eq' || typeof entry[1] !== 'string') {
      throw new ScimError(400, 'invalidFilter', 'A members filter takes value eq "<id>" terms joined by or');
    }
    return entry[1];
  });
}
