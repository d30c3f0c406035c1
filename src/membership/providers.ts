/**
 * Providers, their staff (provider users) and their client organizations.
 */
import { and, asc, count, eq, ne } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import type { Actor, Principal } from './actor.js';
import { createCollection } from './collections.js';
import { newId, normalizeEmail, translateConflicts, type Tx } from './context.js';
import {
  InvalidInput,
  InvalidStatus,
  LastAdminRequired,
  LastOwnerRequired,
  OrganizationNotFound,
  PermissionDenied,
  ProviderDisabled,
  ProviderNotFound,
  ProviderUserNotFound,
  SelfActionRefused,
} from './errors.js';
import { recordEvent } from './events.js';
import { isId, type OrganizationId, type ProviderId, type ProviderUserId, type UserId } from './ids.js';
import { claimInvitation, issueInvitation } from './invitations.js';
import { enqueueMail, mails, tokenLink } from './mail.js';
import { findOrCreateUser, issueApiToken, renderUser, type User } from './accounts.js';
import { inviteMembers } from './members.js';
import { PLANS, type OrganizationCaller, type Plan } from './members.rules.js';
import { randomBytes } from 'node:crypto';

export const PROVIDER_USER_TYPES = ['admin', 'serviceUser'] as const;
export type ProviderUserType = (typeof PROVIDER_USER_TYPES)[number];
const PROVIDER_USER_TYPE_CODES: Record<ProviderUserType, number> = { admin: 0, serviceUser: 1 };
const PROVIDER_USER_STATUS_CODES: Record<string, number> = { invited: 0, accepted: 1, confirmed: 2 };
const PROVIDER_STATUS_CODES: Record<string, number> = { pending: 0, active: 2 };
const ORGANIZATION_STATUS_CODES: Record<string, number> = { managed: 0, created: 1 };

type ProviderRow = typeof schema.providers.$inferSelect;
type ProviderUserRow = typeof schema.providerUsers.$inferSelect;
type OrganizationRow = typeof schema.organizations.$inferSelect;

export interface Provider {
  id: string;
  name: string;
  businessName: string | null;
  billingEmail: string | null;
  type: string;
  status: string;
  statusCode: number;
  enabled: boolean;
  createdAt: string;
}

export interface ProviderUser {
  id: string;
  providerId: string;
  userId: string | null;
  email: string;
  type: ProviderUserType;
  typeCode: number;
  status: string;
  statusCode: number;
  createdAt: string;
  updatedAt: string;
}

export interface Organization {
  id: string;
  identifier: string;
  name: string;
  billingEmail: string | null;
  plan: Plan;
  seats: number;
  status: string;
  statusCode: number;
  enabled: boolean;
  providerId: string | null;
  createdAt: string;
  updatedAt: string;
}

export const renderProvider = (row: ProviderRow): Provider => ({
  id: row.id,
  name: row.name,
  businessName: row.businessName,
  billingEmail: row.billingEmail,
  type: row.type,
  status: row.status,
  statusCode: PROVIDER_STATUS_CODES[row.status] ?? -1,
  enabled: row.enabled,
  createdAt: row.createdAt.toISOString(),
});

const renderProviderUser = (row: ProviderUserRow): ProviderUser => ({
  id: row.id,
  providerId: row.providerId,
  userId: row.userId,
  email: row.email,
  type: row.type as ProviderUserType,
  typeCode: PROVIDER_USER_TYPE_CODES[row.type as ProviderUserType],
  status: row.status,
  statusCode: PROVIDER_USER_STATUS_CODES[row.status] ?? -1,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

export const renderOrganization = (row: OrganizationRow): Organization => ({
  id: row.id,
  identifier: row.identifier,
  name: row.name,
  billingEmail: row.billingEmail,
  plan: row.plan as Plan,
  seats: row.seats,
  status: row.status,
  statusCode: ORGANIZATION_STATUS_CODES[row.status] ?? -1,
  enabled: row.enabled,
  providerId: row.providerId,
  createdAt: row.createdAt.toISOString(),
  updatedAt: row.updatedAt.toISOString(),
});

const API_ACTOR: Actor = { system: 'api' };

/** Operator: creates a pending provider and mails its admin a setup invitation. */
export async function createProvider(tx: Tx, input: { name: string; adminEmail: string }): Promise<Provider> {
  const [row] = await tx.db
    .insert(schema.providers)
    .values({ id: newId(), name: input.name, status: 'pending', createdAt: tx.now, updatedAt: tx.now })
    .returning();
  const email = normalizeEmail(input.adminEmail);
  const token = await issueInvitation(tx, { kind: 'providerSetup', email, providerId: row!.id });
  await enqueueMail(tx, mails.providerSetup(email, tokenLink(tx.deps.publicUrl, 'providers/setup', token)));
  await recordEvent(tx, { type: 'provider.created', actor: API_ACTOR, providerId: row!.id });
  return renderProvider(row!);
}

/** The invited admin completes setup: the provider turns active, the person its first confirmed admin. */
export async function completeProviderSetup(
  tx: Tx,
  input: { token: string; name?: string | undefined; billingEmail?: string | undefined },
): Promise<{ provider: Provider; user: User; apiToken: string }> {
  const invitation = await claimInvitation(tx, input.token, ['providerSetup']);
  const p = schema.providers;
  const [current] = await tx.db.select().from(p).where(eq(p.id, invitation.providerId!)).for('update');
  if (!current || current.status !== 'pending') throw new InvalidStatus('The provider is already set up');
  const [provider] = await tx.db
    .update(p)
    .set({
      status: 'active',
      name: input.name ?? current.name,
      billingEmail: input.billingEmail ? normalizeEmail(input.billingEmail) : invitation.email,
      updatedAt: tx.now,
    })
    .where(eq(p.id, current.id))
    .returning();
  const user = await findOrCreateUser(tx, invitation.email);
  const providerUserId = newId();
  await tx.db.insert(schema.providerUsers).values({
    providerId: current.id,
    id: providerUserId,
    userId: user.id,
    email: invitation.email,
    type: 'admin',
    status: 'confirmed',
    createdAt: tx.now,
    updatedAt: tx.now,
  });
  await recordEvent(tx, {
    type: 'provider.setupCompleted',
    actor: { providerUserId: providerUserId as ProviderUserId, userId: user.id as UserId },
    providerId: current.id,
    providerUserId,
  });
  const { token } = await issueApiToken(tx, user.id, 'provider setup');
  return { provider: renderProvider(provider!), user: renderUser(user), apiToken: token };
}

/** The provider as one caller may act on it. */
export interface ProviderCaller {
  actor: Actor;
  type: ProviderUserType;
  providerUserId?: string;
}

/**
 * Resolves what `principal` may do in provider `providerId`: the operator acts as an admin; a
 * person only as a confirmed provider user of that provider. Anything else is "not found".
 */
export async function resolveProviderCaller(db: Db, providerId: string, principal: Principal): Promise<ProviderCaller> {
  if (!isId(providerId)) throw new ProviderNotFound();
  const [provider] = await db.select().from(schema.providers).where(eq(schema.providers.id, providerId));
  if (!provider) throw new ProviderNotFound();
  if (principal.kind === 'system') return { actor: API_ACTOR, type: 'admin' };
  // A session from an organization's SSO acts in that organization only.
  if (principal.organizationId) throw new ProviderNotFound();
  const pu = schema.providerUsers;
  const [row] = await db
    .select()
    .from(pu)
    .where(and(eq(pu.providerId, providerId), eq(pu.userId, principal.userId), eq(pu.status, 'confirmed')));
  if (!row) throw new ProviderNotFound();
  if (!provider.enabled) throw new ProviderDisabled();
  return {
    actor: { providerUserId: row.id as ProviderUserId, userId: principal.userId },
    type: row.type as ProviderUserType,
    providerUserId: row.id,
  };
}

export function requireProviderAdmin(caller: ProviderCaller): void {
  if (caller.type !== 'admin') throw new PermissionDenied('Only Provider Admins may do this');
}

export async function getProvider(db: Db, providerId: ProviderId): Promise<Provider> {
  const [row] = await db.select().from(schema.providers).where(eq(schema.providers.id, providerId));
  if (!row) throw new ProviderNotFound();
  return renderProvider(row);
}

/**
 * The caller's rights as they are now, read after locking the provider row: a demotion or removal
 * (which locks it too) committed while the request waited applies to it.
 */
export async function recheckProviderCaller(tx: Tx, providerId: ProviderId, principal: Principal): Promise<ProviderCaller> {
  await lockProvider(tx, providerId);
  return resolveProviderCaller(tx.db, providerId, principal);
}

async function lockProvider(tx: Tx, providerId: ProviderId): Promise<ProviderRow> {
  const [row] = await tx.db.select().from(schema.providers).where(eq(schema.providers.id, providerId)).for('update');
  if (!row) throw new ProviderNotFound();
  return row;
}

export async function updateProvider(
  tx: Tx,
  providerId: ProviderId,
  caller: ProviderCaller,
  input: { name?: string | undefined; businessName?: string | null | undefined; billingEmail?: string | undefined },
): Promise<Provider> {
  requireProviderAdmin(caller);
  await lockProvider(tx, providerId);
  const [row] = await tx.db
    .update(schema.providers)
    .set({
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.businessName !== undefined ? { businessName: input.businessName } : {}),
      ...(input.billingEmail !== undefined ? { billingEmail: normalizeEmail(input.billingEmail) } : {}),
      updatedAt: tx.now,
    })
    .where(eq(schema.providers.id, providerId))
    .returning();
  await recordEvent(tx, { type: 'provider.updated', actor: caller.actor, providerId });
  return renderProvider(row!);
}

/** Operator: disabling a provider disables all its client organizations; enabling brings them back. */
export async function setProviderEnabled(tx: Tx, providerId: ProviderId, enabled: boolean): Promise<Provider> {
  await lockProvider(tx, providerId);
  const [row] = await tx.db
    .update(schema.providers)
    .set({ enabled, updatedAt: tx.now })
    .where(eq(schema.providers.id, providerId))
    .returning();
  await tx.db
    .update(schema.organizations)
    .set({ enabled, updatedAt: tx.now })
    .where(eq(schema.organizations.providerId, providerId));
  await recordEvent(tx, { type: enabled ? 'provider.enabled' : 'provider.disabled', actor: API_ACTOR, providerId });
  return renderProvider(row!);
}

export async function listProviders(db: Db): Promise<Provider[]> {
  const rows = await db.select().from(schema.providers).orderBy(asc(schema.providers.createdAt));
  return rows.map(renderProvider);
}

// ---- provider users -------------------------------------------------------------------------

export const PROVIDER_INVITE_BATCH = 20;

export async function listProviderUsers(db: Db, providerId: ProviderId): Promise<ProviderUser[]> {
  const pu = schema.providerUsers;
  const rows = await db.select().from(pu).where(eq(pu.providerId, providerId)).orderBy(asc(pu.createdAt), asc(pu.id));
  return rows.map(renderProviderUser);
}

export async function inviteProviderUsers(
  tx: Tx,
  providerId: ProviderId,
  caller: ProviderCaller,
  input: { emails: string[]; type: ProviderUserType },
): Promise<{ invited: ProviderUser[]; skipped: string[] }> {
  requireProviderAdmin(caller);
  const provider = await lockProvider(tx, providerId);
  const emails = [...new Set(input.emails.map(normalizeEmail))];
  if (emails.length === 0 || emails.length > PROVIDER_INVITE_BATCH) {
    throw new InvalidInput(`Invite between 1 and ${PROVIDER_INVITE_BATCH} emails at once`);
  }
  const inserted = await tx.db
    .insert(schema.providerUsers)
    .values(
      emails.map((email) => ({
        providerId,
        id: newId(),
        email,
        type: input.type,
        status: 'invited',
        createdAt: tx.now,
        updatedAt: tx.now,
      })),
    )
    .onConflictDoNothing()
    .returning();
  for (const row of inserted) {
    await sendProviderUserInvitation(tx, provider, row);
    await recordEvent(tx, { type: 'providerUser.invited', actor: caller.actor, providerId, providerUserId: row.id });
  }
  const invited = new Set(inserted.map((r) => r.email));
  return { invited: inserted.map(renderProviderUser), skipped: emails.filter((e) => !invited.has(e)) };
}

async function sendProviderUserInvitation(tx: Tx, provider: ProviderRow, row: ProviderUserRow): Promise<void> {
  const token = await issueInvitation(tx, {
    kind: 'providerUser',
    email: row.email,
    providerId: provider.id,
    providerUserId: row.id,
  });
  await enqueueMail(tx, mails.providerUserInvitation(row.email, provider.name, tokenLink(tx.deps.publicUrl, 'accept', token)));
}

async function loadProviderUserTarget(
  tx: Tx,
  providerId: ProviderId,
  caller: ProviderCaller,
  providerUserId: string,
): Promise<{ provider: ProviderRow; target: ProviderUserRow }> {
  requireProviderAdmin(caller);
  const provider = await lockProvider(tx, providerId);
  if (!isId(providerUserId)) throw new ProviderUserNotFound();
  const pu = schema.providerUsers;
  const [target] = await tx.db
    .select()
    .from(pu)
    .where(and(eq(pu.providerId, providerId), eq(pu.id, providerUserId)));
  if (!target) throw new ProviderUserNotFound();
  return { provider, target };
}

/** At least one confirmed admin always remains. Call with the provider locked. */
async function requireAnotherConfirmedAdmin(tx: Tx, providerId: string, leavingId: string): Promise<void> {
  const pu = schema.providerUsers;
  const [row] = await tx.db
    .select({ n: count() })
    .from(pu)
    .where(and(eq(pu.providerId, providerId), eq(pu.type, 'admin'), eq(pu.status, 'confirmed'), ne(pu.id, leavingId)));
  if ((row?.n ?? 0) === 0) throw new LastAdminRequired();
}

export async function confirmProviderUser(
  tx: Tx,
  providerId: ProviderId,
  caller: ProviderCaller,
  providerUserId: string,
): Promise<ProviderUser> {
  const { target } = await loadProviderUserTarget(tx, providerId, caller, providerUserId);
  if (target.status !== 'accepted') throw new InvalidStatus('Only accepted provider users can be confirmed');
  const [row] = await tx.db
    .update(schema.providerUsers)
    .set({ status: 'confirmed', updatedAt: tx.now })
    .where(eq(schema.providerUsers.id, target.id))
    .returning();
  const [provider] = await tx.db.select().from(schema.providers).where(eq(schema.providers.id, providerId));
  await enqueueMail(tx, mails.confirmed(target.email, provider!.name));
  await recordEvent(tx, { type: 'providerUser.confirmed', actor: caller.actor, providerId, providerUserId: target.id });
  return renderProviderUser(row!);
}

export async function reinviteProviderUser(
  tx: Tx,
  providerId: ProviderId,
  caller: ProviderCaller,
  providerUserId: string,
): Promise<ProviderUser> {
  const { provider, target } = await loadProviderUserTarget(tx, providerId, caller, providerUserId);
  if (target.status !== 'invited') throw new InvalidStatus('Only invited provider users can be reinvited');
  await sendProviderUserInvitation(tx, provider, target);
  await recordEvent(tx, { type: 'providerUser.reinvited', actor: caller.actor, providerId, providerUserId: target.id });
  return renderProviderUser(target);
}

export async function updateProviderUser(
  tx: Tx,
  providerId: ProviderId,
  caller: ProviderCaller,
  providerUserId: string,
  input: { type: ProviderUserType },
): Promise<ProviderUser> {
  const { target } = await loadProviderUserTarget(tx, providerId, caller, providerUserId);
  if (caller.providerUserId === target.id) throw new SelfActionRefused();
  if (target.type === 'admin' && input.type !== 'admin' && target.status === 'confirmed') {
    await requireAnotherConfirmedAdmin(tx, providerId, target.id);
  }
  const [row] = await tx.db
    .update(schema.providerUsers)
    .set({ type: input.type, updatedAt: tx.now })
    .where(eq(schema.providerUsers.id, target.id))
    .returning();
  await recordEvent(tx, { type: 'providerUser.updated', actor: caller.actor, providerId, providerUserId: target.id });
  return renderProviderUser(row!);
}

/** Removal deletes the row (provider users have no revoked state). */
export async function removeProviderUser(
  tx: Tx,
  providerId: ProviderId,
  caller: ProviderCaller,
  providerUserId: string,
): Promise<void> {
  const { target } = await loadProviderUserTarget(tx, providerId, caller, providerUserId);
  if (caller.providerUserId === target.id) throw new SelfActionRefused();
  if (target.type === 'admin' && target.status === 'confirmed') await requireAnotherConfirmedAdmin(tx, providerId, target.id);
  await tx.db.delete(schema.providerUsers).where(eq(schema.providerUsers.id, target.id));
  await recordEvent(tx, { type: 'providerUser.removed', actor: caller.actor, providerId, providerUserId: target.id });
}

// ---- clients ---------------------------------------------------------------------------------

export async function listClients(db: Db, providerId: ProviderId): Promise<Organization[]> {
  const o = schema.organizations;
  const rows = await db.select().from(o).where(eq(o.providerId, providerId)).orderBy(asc(o.createdAt), asc(o.id));
  return rows.map(renderOrganization);
}

const IDENTIFIER = /^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$/;

function defaultIdentifier(name: string): string {
  const slug = name
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return `${slug || 'org'}-${randomBytes(3).toString('hex')}`;
}

function requireSeatCount(seats: number): void {
  if (!Number.isSafeInteger(seats) || seats < 0) throw new InvalidInput('seats must be a whole number, 0 or more');
}

export interface CreateClientInput {
  name: string;
  plan: Plan;
  seats: number;
  ownerEmail?: string | undefined;
  identifier?: string | undefined;
  collectionName?: string | undefined;
}

/** Provider Admin: creates a managed client; `ownerEmail` is invited as its Owner. */
export async function createClient(
  tx: Tx,
  providerId: ProviderId,
  caller: ProviderCaller,
  input: CreateClientInput,
): Promise<Organization> {
  requireProviderAdmin(caller);
  const provider = await lockProvider(tx, providerId);
  if (provider.status !== 'active') throw new InvalidStatus('The provider has not completed setup');
  if (!PLANS.includes(input.plan)) throw new InvalidInput(`Unknown plan ${input.plan}`);
  requireSeatCount(input.seats);
  const identifier = (input.identifier ?? defaultIdentifier(input.name)).toLowerCase();
  if (!IDENTIFIER.test(identifier)) {
    throw new InvalidInput('identifier takes 1 to 50 lower-case letters, digits and inner hyphens');
  }
  const [row] = await translateConflicts(
    () =>
      tx.db
        .insert(schema.organizations)
        .values({
          id: newId(),
          providerId,
          identifier,
          name: input.name,
          billingEmail: provider.billingEmail,
          plan: input.plan,
          seats: input.seats,
          status: 'managed',
          enabled: provider.enabled,
          createdAt: tx.now,
          updatedAt: tx.now,
        })
        .returning(),
    { organizations_identifier_key: 'An organization with this identifier already exists' },
  );
  const org = row!;
  await recordEvent(tx, { type: 'client.created', actor: caller.actor, providerId, organizationId: org.id });
  const asOwner: OrganizationCaller = { actor: caller.actor, role: 'owner', permissions: {} };
  if (input.collectionName) {
    await createCollection(tx, org.id as OrganizationId, asOwner, { name: input.collectionName });
  }
  if (input.ownerEmail) {
    await inviteMembers(tx, org.id as OrganizationId, asOwner, { emails: [input.ownerEmail], role: 'owner' });
  }
  return renderOrganization(org);
}

async function loadClient(tx: Tx, providerId: ProviderId, organizationId: string): Promise<OrganizationRow> {
  if (!isId(organizationId)) throw new OrganizationNotFound();
  const o = schema.organizations;
  const [row] = await tx.db
    .select()
    .from(o)
    .where(and(eq(o.id, organizationId), eq(o.providerId, providerId)))
    .for('update');
  if (!row) throw new OrganizationNotFound();
  return row;
}

/** Admins and service users rename a client and change its seats (never below the seats in use). */
export async function updateClient(
  tx: Tx,
  providerId: ProviderId,
  caller: ProviderCaller,
  organizationId: string,
  input: { name?: string | undefined; seats?: number | undefined },
): Promise<Organization> {
  const org = await loadClient(tx, providerId, organizationId);
  if (input.seats !== undefined) {
    requireSeatCount(input.seats);
    const used = org.seatsUsed;
    if (input.seats < used) {
      throw new InvalidInput(`${used} seats are in use; revoke or remove members before lowering seats`, {
        details: { used },
      });
    }
  }
  const [row] = await tx.db
    .update(schema.organizations)
    .set({
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.seats !== undefined ? { seats: input.seats } : {}),
      updatedAt: tx.now,
    })
    .where(eq(schema.organizations.id, org.id))
    .returning();
  await recordEvent(tx, { type: 'organization.updated', actor: caller.actor, providerId, organizationId: org.id });
  return renderOrganization(row!);
}

/** Provider Admin: the client stays, self-managed; it needs a confirmed real Owner first. */
export async function unlinkClient(
  tx: Tx,
  providerId: ProviderId,
  caller: ProviderCaller,
  organizationId: string,
): Promise<Organization> {
  requireProviderAdmin(caller);
  const org = await loadClient(tx, providerId, organizationId);
  const m = schema.members;
  const [owners] = await tx.db
    .select({ n: count() })
    .from(m)
    .where(and(eq(m.organizationId, org.id), eq(m.role, 'owner'), eq(m.status, 'confirmed')));
  if ((owners?.n ?? 0) === 0) {
    throw new LastOwnerRequired('A client needs a confirmed Owner of its own before it is unlinked');
  }
  const [row] = await tx.db
    .update(schema.organizations)
    .set({ providerId: null, status: 'created', enabled: true, updatedAt: tx.now })
    .where(eq(schema.organizations.id, org.id))
    .returning();
  await recordEvent(tx, { type: 'client.unlinked', actor: caller.actor, providerId, organizationId: org.id });
  return renderOrganization(row!);
}
