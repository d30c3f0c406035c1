/**
 * An organization's directory connection (design.md, "Directory sync"): stored as the PUT body
 * without its bind password, which is sealed with ENCRYPTION_KEY under the context
 * `directory:<organization id>` (secret-box.ts) and never rendered. The adapter validates the
 * document's shape (src/sync/settings.ts); the engine owns who may change it, the plan, the
 * password rule and the event.
 */
import { eq } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import type { Tx } from './context.js';
import { DomainError, InvalidInput } from './errors.js';
import { recordEvent } from './events.js';
import { isId, type OrganizationId } from './ids.js';
import { requireFeature, requirePermission, type OrganizationCaller } from './members.rules.js';
import { loadOrganization } from './organizations.js';
import { lockOrganization } from './organization-state.js';
import { openSecret, sealSecret } from './secret-box.js';
import { unstorablePaths } from './storable.js';

export class DirectoryNotConfigured extends DomainError {
  static readonly code = 'directory.not_found';
  constructor(message = 'The organization has no directory configuration') {
    super(DirectoryNotConfigured.code, message);
  }
}

/** The schedule of scheduled runs: a 5-field cron expression or an interval in minutes (≥ 5). */
export interface DirectorySchedule {
  cron?: string | undefined;
  intervalMinutes?: number | undefined;
}

/**
 * The configuration document as the adapter validated it (`directoryConfigSchema`). The engine
 * reads only the password and the schedule; the rest is stored as given.
 */
export interface DirectoryConfigInput {
  /** Write-only. Required on the first PUT; a PUT without it keeps the stored one. */
  bindPassword?: string | undefined;
  schedule?: DirectorySchedule | undefined;
  [field: string]: unknown;
}

/** What GET answers: the stored document, never the password. */
export type DirectoryConfig = Record<string, unknown> & { bindPasswordSet: true; createdAt: string; updatedAt: string };

/** The stored document with its unsealed password: for the sync runner only (see directory-runs.ts). */
export interface DirectoryConnection {
  config: Record<string, unknown>;
  bindPassword: string;
}

type ConfigRow = typeof schema.directoryConfigs.$inferSelect;

const sealContext = (organizationId: string) => ({ context: `directory:${organizationId}` });

/** Who may configure and run directory sync: owners, admins and custom roles with manageUsers, on a plan with the feature. */
export async function requireDirectoryAccess(db: Db, organizationId: OrganizationId, caller: OrganizationCaller): Promise<void> {
  requirePermission(caller, 'manageUsers');
  requireFeature((await loadOrganization(db, organizationId)).plan, 'directorySync');
}

/**
 * Creates or replaces the organization's directory configuration. The bind password is sealed
 * before it is stored; a PUT without one keeps the stored password, and the first PUT needs one.
 */
export async function putDirectoryConfig(
  tx: Tx,
  organizationId: OrganizationId,
  caller: OrganizationCaller,
  input: DirectoryConfigInput,
): Promise<DirectoryConfig> {
  requirePermission(caller, 'manageUsers');
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'directorySync');
  const { bindPassword, ...config } = input;
  const unstorable = unstorablePaths(config, 'body');
  if (unstorable.length > 0) {
    throw new InvalidInput('The configuration holds text that cannot be stored', {
      details: unstorable.map((path) => ({ path, message: 'must not contain NUL or an unpaired surrogate' })),
    });
  }
  const existing = await loadConfigRow(tx.db, organizationId);
  if (!bindPassword && !existing) {
    throw new InvalidInput('The first directory configuration needs the bind password', {
      details: [{ path: 'body.bindPassword', message: 'Required on the first configuration' }],
    });
  }
  const sealed = bindPassword
    ? sealSecret(tx.deps.encryptionKey, bindPassword, sealContext(organizationId))
    : existing!.bindPasswordSealed;
  const values = {
    config,
    bindPasswordSealed: sealed,
    scheduleCron: input.schedule?.cron ?? null,
    scheduleIntervalMinutes: input.schedule?.intervalMinutes ?? null,
    updatedAt: tx.now,
  };
  const c = schema.directoryConfigs;
  const [row] = await tx.db
    .insert(c)
    .values({ organizationId, createdAt: tx.now, ...values })
    .onConflictDoUpdate({ target: c.organizationId, set: values })
    .returning();
  await recordEvent(tx, { type: 'organization.updated', actor: caller.actor, organizationId });
  return renderConfig(row!);
}

export async function getDirectoryConfig(db: Db, organizationId: OrganizationId, caller: OrganizationCaller): Promise<DirectoryConfig> {
  await requireDirectoryAccess(db, organizationId, caller);
  const row = await loadConfigRow(db, organizationId);
  if (!row) throw new DirectoryNotConfigured();
  return renderConfig(row);
}

/** Deletes the configuration (and with it the schedule); the run history stays. */
export async function deleteDirectoryConfig(tx: Tx, organizationId: OrganizationId, caller: OrganizationCaller): Promise<void> {
  requirePermission(caller, 'manageUsers');
  const org = await lockOrganization(tx, organizationId);
  requireFeature(org.plan, 'directorySync');
  const deleted = await tx.db
    .delete(schema.directoryConfigs)
    .where(eq(schema.directoryConfigs.organizationId, organizationId))
    .returning({ id: schema.directoryConfigs.organizationId });
  if (deleted.length === 0) throw new DirectoryNotConfigured();
  await recordEvent(tx, { type: 'organization.updated', actor: caller.actor, organizationId });
}

/** The stored document with the password unsealed, or undefined when there is none. Runner only. */
export async function loadDirectoryConnection(
  db: Db,
  encryptionKey: string,
  organizationId: string,
): Promise<DirectoryConnection | undefined> {
  if (!isId(organizationId)) return undefined;
  const row = await loadConfigRow(db, organizationId);
  if (!row) return undefined;
  return { config: row.config, bindPassword: openSecret(encryptionKey, row.bindPasswordSealed, sealContext(organizationId)) };
}

async function loadConfigRow(db: Db, organizationId: string): Promise<ConfigRow | undefined> {
  const [row] = await db.select().from(schema.directoryConfigs).where(eq(schema.directoryConfigs.organizationId, organizationId));
  return row;
}

function renderConfig(row: ConfigRow): DirectoryConfig {
  return { ...row.config, bindPasswordSet: true, createdAt: row.createdAt.toISOString(), updatedAt: row.updatedAt.toISOString() };
}
