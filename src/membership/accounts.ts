/**
 * People's accounts, their API tokens, the operator token, and accepting invitations.
 */
import { and, desc, eq, gt, inArray, sql, type SQL } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import type { Principal } from './actor.js';
import { newId, normalizeEmail, type EngineDeps, type Tx } from './context.js';
import { InvalidStatus, InvitationEmailMismatch, InvitationInvalid, SsoRequired, TokenNotFound, Unauthenticated } from './errors.js';
import { recordEvent } from './events.js';
import { isId, type OrganizationId, type ProviderUserId, type UserId } from './ids.js';
import { claimInvitation } from './invitations.js';
import { renderMember, type Member } from './members.js';
import { lockOrganization, requireSingleOrgAllows } from './organization-state.js';
import { generateSecret, hashSecret, secretMatches } from './secrets.js';

export interface User {
  id: string;
  email: string;
  name: string | null;
  createdAt: string;
}

type UserRow = typeof schema.users.$inferSelect;

const renderUser = (row: UserRow): User => ({
  id: row.id,
  email: row.email,
  name: row.name,
  createdAt: row.createdAt.toISOString(),
});

/** Finds the account of `email` or creates it; a concurrent creation of the same email is tolerated. */
export async function findOrCreateUser(tx: Tx, email: string, name?: string | null): Promise<UserRow> {
  const normalized = normalizeEmail(email);
  await tx.db
    .insert(schema.users)
    .values({ id: newId(), email: normalized, name: name ?? null, createdAt: tx.now })
    .onConflictDoNothing();
  const [row] = await tx.db
    .select()
    .from(schema.users)
    .where(eq(sql`lower(${schema.users.email})`, normalized));
  if (name && row && !row.name) {
    await tx.db.update(schema.users).set({ name }).where(eq(schema.users.id, row.id));
    return { ...row, name };
  }
  return row!;
}

/** Issues a personal API token; the secret is returned once and stored only as a hash. */
export async function issueApiToken(tx: Tx, userId: string, name: string): Promise<{ id: string; token: string }> {
  const token = generateSecret('pt');
  const id = newId();
  await tx.db.insert(schema.apiTokens).values({ id, userId, name, tokenHash: hashSecret(token), createdAt: tx.now });
  return { id, token };
}

export async function listApiTokens(db: Db, userId: string) {
  const t = schema.apiTokens;
  const rows = await db
    .select({ id: t.id, name: t.name, createdAt: t.createdAt, lastUsedAt: t.lastUsedAt })
    .from(t)
    .where(eq(t.userId, userId))
    .orderBy(desc(t.createdAt));
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    createdAt: r.createdAt.toISOString(),
    lastUsedAt: r.lastUsedAt?.toISOString() ?? null,
  }));
}

export async function revokeApiToken(db: Db, userId: string, tokenId: string): Promise<void> {
  // A malformed id names no token; querying the uuid column with it would fail as a 500.
  if (!isId(tokenId)) throw new TokenNotFound();
  const t = schema.apiTokens;
  const deleted = await db
    .delete(t)
    .where(and(eq(t.userId, userId), eq(t.id, tokenId)))
    .returning({ id: t.id });
  if (deleted.length === 0) throw new TokenNotFound();
}

export async function getUser(db: Db, userId: string): Promise<User> {
  const [row] = await db.select().from(schema.users).where(eq(schema.users.id, userId));
  if (!row) throw new Unauthenticated();
  return renderUser(row);
}

const SYSTEM_TOKEN_KEY = 'systemAdminTokenHash';

/**
 * Makes sure an operator token exists. With `configured` set, that token is the operator token.
 * Otherwise one is generated on first start and returned once (to be printed); later starts
 * return nothing, as only its hash is kept.
 */
export async function ensureSystemToken(deps: EngineDeps, configured: string | undefined): Promise<string | undefined> {
  if (configured) return undefined;
  const token = generateSecret('pto');
  const inserted = await deps.db
    .insert(schema.systemSettings)
    .values({ key: SYSTEM_TOKEN_KEY, value: hashSecret(token), createdAt: deps.clock() })
    .onConflictDoNothing()
    .returning();
  return inserted.length > 0 ? token : undefined;
}

/**
 * Replaces the stored operator token with a new one, returned once (only its hash is kept). The
 * previous token stops working at once, on every instance, as `authenticate` reads the hash on
 * each call.
 */
export async function rotateSystemToken(deps: EngineDeps): Promise<string> {
  const token = generateSecret('pto');
  const value = hashSecret(token);
  await deps.db
    .insert(schema.systemSettings)
    .values({ key: SYSTEM_TOKEN_KEY, value, createdAt: deps.clock() })
    .onConflictDoUpdate({ target: schema.systemSettings.key, set: { value } });
  return token;
}

/** Resolves a bearer token to who holds it, or throws `Unauthenticated`. */
export async function authenticate(
  deps: EngineDeps,
  configuredSystemToken: string | undefined,
  token: string,
): Promise<Principal> {
  if (configuredSystemToken) {
    if (secretMatches(token, hashSecret(configuredSystemToken))) return { kind: 'system' };
  } else {
    const [stored] = await deps.db
      .select()
      .from(schema.systemSettings)
      .where(eq(schema.systemSettings.key, SYSTEM_TOKEN_KEY));
    if (stored && secretMatches(token, stored.value)) return { kind: 'system' };
  }
  const now = deps.clock();
  if (token.startsWith(`${SESSION_PREFIX}_`)) {
    const s = schema.sessions;
    const [session] = await deps.db
      .update(s)
      .set({ lastUsedAt: now })
      .where(and(eq(s.tokenHash, hashSecret(token)), gt(s.expiresAt, now)))
      .returning({ userId: s.userId, organizationId: s.organizationId, ssoRequired: ssoRequiredOutside('"sessions"."user_id"', '"sessions"."organization_id"') });
    if (!session) throw new Unauthenticated();
    if (session.ssoRequired) throw new SsoRequired();
    return { kind: 'user', userId: session.userId as UserId, organizationId: session.organizationId as OrganizationId };
  }
  const t = schema.apiTokens;
  const [row] = await deps.db
    .update(t)
    .set({ lastUsedAt: now })
    .where(eq(t.tokenHash, hashSecret(token)))
    .returning({ userId: t.userId, ssoRequired: ssoRequiredOutside('"api_tokens"."user_id"', null) });
  if (!row) throw new Unauthenticated();
  if (row.ssoRequired) throw new SsoRequired();
  return { kind: 'user', userId: row.userId as UserId };
}

/** The prefix of session tokens issued by sign-in (sso-signin.ts), told apart from personal tokens (`pt`). */
export const SESSION_PREFIX = 'ps';

/**
 * Whether the person is an active member with the user or a custom role of an organization with
 * the requireSso policy on, other than `signedInTo`: such a person gets a session from that
 * organization's SSO only. Owners and admins are exempt, so a broken IdP never locks everyone out.
 */
function ssoRequiredOutside(userId: string, signedInTo: string | null): SQL<boolean> {
  // Written out with aliases and qualified outer columns: drizzle renders RETURNING columns
  // unqualified, which inside this subquery would name the members' own columns.
  return sql<boolean>`exists (select 1 from members sso_m join policies sso_p on sso_p.organization_id = sso_m.organization_id
    and sso_p.type = 'requireSso' and sso_p.enabled
    where sso_m.user_id = ${sql.raw(userId)} and sso_m.status in ('accepted', 'confirmed') and sso_m.role in ('user', 'custom')
    ${signedInTo ? sql`and sso_m.organization_id is distinct from ${sql.raw(signedInTo)}` : sql``})`;
}

/** Whether `userId` may hold a session that did not come from SSO (see ssoRequiredOutside). */
export async function requireSsoAllowsTokens(db: Db, userId: string): Promise<void> {
  const u = schema.users;
  const [row] = await db.select({ required: ssoRequiredOutside('"users"."id"', null) }).from(u).where(eq(u.id, userId));
  if (row?.required) throw new SsoRequired();
}

export interface AcceptedInvitation {
  user: User;
  /** Null when a requireSso policy gives this person sessions through SSO only. */
  apiToken: string | null;
  member?: Member;
  providerUserId?: string;
}

/**
 * Accepts a provider-user or member invitation with its mailed token. The account of the invited
 * email is created if needed; when the caller is signed in, its account's email must be the
 * invited one.
 */
export async function acceptInvitation(
  tx: Tx,
  input: { token: string; name?: string | undefined; signedInUserId?: string | undefined },
): Promise<AcceptedInvitation> {
  const invitation = await claimInvitation(tx, input.token, ['providerUser', 'member']);
  if (input.signedInUserId) {
    const signedIn = await getUser(tx.db, input.signedInUserId);
    if (normalizeEmail(signedIn.email) !== normalizeEmail(invitation.email)) throw new InvitationEmailMismatch();
  }
  const user = await findOrCreateUser(tx, invitation.email, input.name);
  const actor = { userId: user.id as UserId };
  const result: Partial<AcceptedInvitation> = {};
  if (invitation.kind === 'member') {
    // The organization first (shared): a revoke or removal of this member, which locks it
    // exclusively, then runs wholly before or wholly after the acceptance. It also refuses a
    // disabled organization.
    await lockOrganization(tx, invitation.organizationId! as OrganizationId, 'share');
    const m = schema.members;
    const [member] = await tx.db
      .select()
      .from(m)
      .where(eq(m.id, invitation.memberId!))
      .for('update');
    if (!member || member.status !== 'invited') throw new InvalidStatus('The invitation is no longer open');
    // Only the member's current address accepts: a token mailed to an address it no longer has does not.
    if (normalizeEmail(member.email) !== normalizeEmail(invitation.email)) throw new InvitationInvalid();
    await requireSingleOrgAllows(tx, member.organizationId as OrganizationId, user.id);
    const [row] = await tx.db
      .update(m)
      .set({ status: 'accepted', userId: user.id, name: member.name ?? input.name ?? null, updatedAt: tx.now })
      .where(eq(m.id, member.id))
      .returning();
    await recordEvent(tx, { type: 'member.accepted', actor, organizationId: member.organizationId, memberId: member.id });
    result.member = renderMember(row!);
  } else {
    const pu = schema.providerUsers;
    const [providerUser] = await tx.db
      .select()
      .from(pu)
      .where(eq(pu.id, invitation.providerUserId!))
      .for('update');
    if (!providerUser || providerUser.status !== 'invited') throw new InvalidStatus('The invitation is no longer open');
    await tx.db.update(pu).set({ status: 'accepted', userId: user.id, updatedAt: tx.now }).where(eq(pu.id, providerUser.id));
    await recordEvent(tx, {
      type: 'providerUser.accepted',
      actor: { providerUserId: providerUser.id as ProviderUserId, userId: user.id as UserId },
      providerId: providerUser.providerId,
      providerUserId: providerUser.id,
    });
    result.providerUserId = providerUser.id;
  }
  // Under requireSso the person's session comes from the organization's SSO, not from here.
  const u = schema.users;
  const [required] = await tx.db.select({ required: ssoRequiredOutside('"users"."id"', null) }).from(u).where(eq(u.id, user.id));
  if (required?.required) return { ...result, user: renderUser(user), apiToken: null };
  const { token } = await issueApiToken(tx, user.id, 'invitation acceptance');
  return { ...result, user: renderUser(user), apiToken: token };
}

/** A person's account with the providers and organizations it belongs to (accepted or confirmed). */
export async function describeUser(db: Db, userId: string) {
  const user = await getUser(db, userId);
  const pu = schema.providerUsers;
  const providers = await db
    .select({ providerId: pu.providerId, providerUserId: pu.id, type: pu.type, status: pu.status })
    .from(pu)
    .where(eq(pu.userId, userId));
  const m = schema.members;
  const organizations = await db
    .select({ organizationId: m.organizationId, memberId: m.id, role: m.role, status: m.status })
    .from(m)
    .where(and(eq(m.userId, userId), inArray(m.status, ['accepted', 'confirmed'])));
  return { user, providers, organizations };
}

export { renderUser };
