/** Organization collections. Access is granted on groups and members (their `collections` field). */
import { and, asc, eq } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import { newId, translateConflicts, type Tx } from './context.js';
import { CollectionNotFound } from './errors.js';
import { recordEvent } from './events.js';
import { isId, type OrganizationId } from './ids.js';
import { requireFeature, requirePermission, type OrganizationCaller, type PermissionFlag } from './members.rules.js';
import { lockOrganization } from './organization-state.js';

export interface Collection {
  id: string;
  organizationId: string;
  name: string;
  externalId: string | null;
  createdAt: string;
  updatedAt: string;
}

type CollectionRow = typeof schema.collections.$inferSelect;

const COLLECTION_CONFLICTS = { collections_org_external_id_key: 'A collection with this externalId already exists' };

const renderCollection = (row: CollectionRow): Collection => ({
  id: row.id,
  organizationId: row.organizationId,
  name: row.name,
  externalId: row.externalId,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

export async function getCollection(db: Db, organizationId: string, collectionId: string): Promise<Collection> {
  if (!isId(collectionId)) throw new CollectionNotFound();
  const c = schema.collections;
  const [row] = await db.select().from(c).where(and(eq(c.organizationId, organizationId), eq(c.id, collectionId)));
  if (!row) throw new CollectionNotFound();
  return renderCollection(row);
}

export async function listCollections(db: Db, organizationId: string): Promise<Collection[]> {
  const c = schema.collections;
  const rows = await db.select().from(c).where(eq(c.organizationId, organizationId)).orderBy(asc(c.createdAt), asc(c.id));
  return rows.map(renderCollection);
}

async function prepare(tx: Tx, organizationId: OrganizationId, caller: OrganizationCaller, flag: PermissionFlag) {
  requirePermission(caller, flag);
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'collections');
  return org;
}

export async function createCollection(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  input: { name: string; externalId?: string | null | undefined },
): Promise<Collection> {
  const org = await prepare(tx, organizationId, caller, 'createNewCollections');
  const [row] = await translateConflicts(
    () =>
      tx.db
        .insert(schema.collections)
        .values({
          organizationId: org.id,
          id: newId(),
          name: input.name,
          externalId: input.externalId ?? null,
          createdAt: tx.now,
          updatedAt: tx.now,
        })
        .returning(),
    COLLECTION_CONFLICTS,
  );
  await recordEvent(tx, { type: 'collection.created', actor: caller.actor, organizationId: org.id, collectionId: row!.id });
  return renderCollection(row!);
}

export async function updateCollection(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  collectionId: string,
  input: { name?: string | undefined; externalId?: string | null | undefined },
): Promise<Collection> {
  const org = await prepare(tx, organizationId, caller, 'editAnyCollection');
  const current = await getCollection(tx.db, org.id, collectionId);
  const [row] = await translateConflicts(
    () =>
      tx.db
        .update(schema.collections)
        .set({
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(input.externalId !== undefined ? { externalId: input.externalId } : {}),
          updatedAt: tx.now,
        })
        .where(eq(schema.collections.id, current.id))
        .returning(),
    COLLECTION_CONFLICTS,
  );
  await recordEvent(tx, { type: 'collection.updated', actor: caller.actor, organizationId: org.id, collectionId: current.id });
  return renderCollection(row!);
}

export async function deleteCollection(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  collectionId: string,
): Promise<void> {
  const org = await prepare(tx, organizationId, caller, 'deleteAnyCollection');
  const current = await getCollection(tx.db, org.id, collectionId);
  await tx.db.delete(schema.collections).where(eq(schema.collections.id, current.id));
  await recordEvent(tx, { type: 'collection.deleted', actor: caller.actor, organizationId: org.id, collectionId: current.id });
}
