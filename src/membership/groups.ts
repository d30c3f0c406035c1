/**
 * Organization groups: a name, an optional externalId, members and collection access.
 * Member adds and removes are row inserts and deletes, so concurrent changes never lose each other.
 */
import { and, asc, eq, inArray } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import { translateConflicts, newId, type Tx } from './context.js';
import { GroupNotFound } from './errors.js';
import { recordEvent } from './events.js';
import { isId, type OrganizationId } from './ids.js';
import type { CollectionAccess } from './members.js';
import { requireFeature, requirePermission, type OrganizationCaller } from './members.rules.js';
import { lockOrganization, requireOwnIds } from './organization-state.js';

export interface Group {
  id: string;
  organizationId: string;
  name: string;
  externalId: string | null;
  createdAt: string;
  updatedAt: string;
  members?: string[];
  collections?: CollectionAccess[];
}

type GroupRow = typeof schema.groups.$inferSelect;

const GROUP_CONFLICTS = {
  groups_org_external_id_key: 'A group with this externalId already exists',
  groups_org_name_key: 'A group with this name already exists',
};

export const renderGroup = (row: GroupRow): Group => ({
  id: row.id,
  organizationId: row.organizationId,
  name: row.name,
  externalId: row.externalId,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

export interface GroupInput {
  name: string;
  externalId?: string | null | undefined;
  members?: string[] | undefined;
  collections?: CollectionAccess[] | undefined;
}

/**
 * The group's row; `forChange` locks it (`FOR NO KEY UPDATE`) so that changes replacing the group's
 * sets apply one after another, while membership rows referencing it (which take `KEY SHARE` on it)
 * are still added and removed meanwhile.
 */
async function loadGroupRow(db: Db, organizationId: string, groupId: string, options: { forChange?: boolean } = {}): Promise<GroupRow> {
  if (!isId(groupId)) throw new GroupNotFound();
  const g = schema.groups;
  const query = db.select().from(g).where(and(eq(g.organizationId, organizationId), eq(g.id, groupId)));
  const [row] = await (options.forChange ? query.for('no key update') : query);
  if (!row) throw new GroupNotFound();
  return row;
}

/** The group's own fields, without reading its members or collections (a group may have 100,000 members). */
export async function getGroupFields(db: Db, organizationId: string, groupId: string): Promise<Group> {
  return renderGroup(await loadGroupRow(db, organizationId, groupId));
}

export async function getGroup(db: Db, organizationId: string, groupId: string): Promise<Group> {
  const row = await loadGroupRow(db, organizationId, groupId);
  const members = await db
    .select({ id: schema.groupMembers.memberId })
    .from(schema.groupMembers)
    .where(eq(schema.groupMembers.groupId, row.id));
  const cg = schema.collectionGroups;
  const collections = await db
    .select({ id: cg.collectionId, readOnly: cg.readOnly, hidePasswords: cg.hidePasswords, manage: cg.manage })
    .from(cg)
    .where(eq(cg.groupId, row.id));
  return { ...renderGroup(row), members: members.map((m) => m.id).sort(), collections };
}

export async function listGroups(db: Db, organizationId: string): Promise<Group[]> {
  const g = schema.groups;
  const rows = await db.select().from(g).where(eq(g.organizationId, organizationId)).orderBy(asc(g.createdAt), asc(g.id));
  return rows.map(renderGroup);
}

async function checkGroupChange(tx: Tx, organizationId: OrganizationId, caller: OrganizationCaller, input: Partial<GroupInput>) {
  requirePermission(caller, 'manageGroups');
  // Groups count no seats and no owners, and grant no rights a request rechecks: the organization
  // row is held shared (its rights and plan stay as read); the group's own row orders changes of
  // one group (`loadGroupRow` with `forChange`), and unique indexes keep names and externalIds apart.
  const org = await lockOrganization(tx, organizationId, 'key share');
  requireFeature(org.plan, 'groups');
  if (input.members) await requireOwnIds(tx, org.id, schema.members, input.members, 'member');
  if (input.collections) {
    await requireOwnIds(tx, org.id, schema.collections, input.collections.map((c) => c.id), 'collection');
  }
  return org;
}

export async function createGroup(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  input: GroupInput,
): Promise<Group> {
  const org = await checkGroupChange(tx, organizationId, caller, input);
  const [row] = await translateConflicts(
    () =>
      tx.db
        .insert(schema.groups)
        .values({
          organizationId: org.id,
          id: newId(),
          name: input.name,
          externalId: input.externalId ?? null,
          createdAt: tx.now,
          updatedAt: tx.now,
        })
        .returning(),
    GROUP_CONFLICTS,
  );
  if (input.members) await addGroupMembers(tx, org.id, row!.id, input.members);
  if (input.collections) await replaceGroupCollections(tx, org.id, row!.id, input.collections);
  await recordEvent(tx, { type: 'group.created', actor: caller.actor, organizationId: org.id, groupId: row!.id });
  return getGroup(tx.db, org.id, row!.id);
}

/** Changes the given fields; `members` and `collections`, when given, replace the current sets. */
export async function updateGroup(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  groupId: string,
  input: Partial<GroupInput>,
): Promise<Group> {
  const org = await checkGroupChange(tx, organizationId, caller, input);
  const group = await loadGroupRow(tx.db, org.id, groupId, { forChange: true });
  await translateConflicts(
    () =>
      tx.db
        .update(schema.groups)
        .set({
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(input.externalId !== undefined ? { externalId: input.externalId } : {}),
          updatedAt: tx.now,
        })
        .where(eq(schema.groups.id, group.id)),
    GROUP_CONFLICTS,
  );
  if (input.members) {
    await tx.db.delete(schema.groupMembers).where(eq(schema.groupMembers.groupId, group.id));
    await addGroupMembers(tx, org.id, group.id, input.members);
  }
  if (input.collections) await replaceGroupCollections(tx, org.id, group.id, input.collections);
  await recordEvent(tx, { type: 'group.updated', actor: caller.actor, organizationId: org.id, groupId: group.id });
  return getGroup(tx.db, org.id, group.id);
}

export async function deleteGroup(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  groupId: string,
): Promise<void> {
  const org = await checkGroupChange(tx, organizationId, caller, {});
  const group = await loadGroupRow(tx.db, org.id, groupId, { forChange: true });
  await tx.db.delete(schema.groups).where(eq(schema.groups.id, group.id));
  await recordEvent(tx, { type: 'group.deleted', actor: caller.actor, organizationId: org.id, groupId: group.id });
}

/** Inserts membership rows; members already in the group are left as they are (no duplicates). Returns how many were new. */
async function addGroupMembers(tx: Tx, organizationId: string, groupId: string, memberIds: string[]): Promise<number> {
  const unique = [...new Set(memberIds)];
  if (unique.length === 0) return 0;
  const added = await tx.db
    .insert(schema.groupMembers)
    .values(unique.map((memberId) => ({ organizationId, groupId, memberId })))
    .onConflictDoNothing()
    .returning({ memberId: schema.groupMembers.memberId });
  return added.length;
}

/** Changes only the named members of a group, atomically; the rest of the group is untouched. */
export async function changeGroupMembers(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  groupId: string,
  change: { add?: string[] | undefined; remove?: string[] | undefined },
): Promise<void> {
  requirePermission(caller, 'manageGroups');
  // Membership rows need no exclusive lock: each add or remove is one set statement, and neither
  // reads the rest of the group, so its size costs nothing. The shared lock still refuses a
  // disabled organization and keeps the caller's rights as rechecked.
  const org = await lockOrganization(tx, organizationId, 'key share');
  requireFeature(org.plan, 'groups');
  const group = await loadGroupRow(tx.db, organizationId, groupId);
  let changed = 0;
  if (change.add?.length) {
    await requireOwnIds(tx, organizationId, schema.members, change.add, 'member');
    changed += await addGroupMembers(tx, organizationId, group.id, change.add);
  }
  const remove = (change.remove ?? []).filter(isId);
  if (remove.length > 0) {
    const gm = schema.groupMembers;
    const removed = await tx.db
      .delete(gm)
      .where(and(eq(gm.groupId, group.id), inArray(gm.memberId, remove)))
      .returning({ memberId: gm.memberId });
    changed += removed.length;
  }
  // Entra re-adds existing members often: a change that changed nothing is not an event.
  if (changed > 0) await recordEvent(tx, { type: 'group.updated', actor: caller.actor, organizationId, groupId: group.id });
}

async function replaceGroupCollections(
  tx: Tx,
  organizationId: string,
  groupId: string,
  access: CollectionAccess[],
): Promise<void> {
  await tx.db.delete(schema.collectionGroups).where(eq(schema.collectionGroups.groupId, groupId));
  const byId = new Map(access.map((a) => [a.id, a]));
  if (byId.size === 0) return;
  await tx.db.insert(schema.collectionGroups).values(
    [...byId.values()].map((a) => ({
      organizationId,
      collectionId: a.id,
      groupId,
      readOnly: a.readOnly,
      hidePasswords: a.hidePasswords,
      manage: a.manage,
    })),
  );
}
