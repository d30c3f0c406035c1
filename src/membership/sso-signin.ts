/**
 * Signing in through an organization's IdP, the engine's part (design.md "SSO", domain.md "SSO and
 * claimed domains"): the server-side transaction that carries a sign-in from its start to the
 * IdP's answer, the SAML replay cache, and the membership a verified identity leads to — accept an
 * invitation, provision just in time, or refuse — with the session it earns. The protocols
 * themselves (OIDC, SAML) are the adapter's (src/sso); it hands over an identity it verified.
 */
import { and, eq, gt, isNull, lt, sql } from 'drizzle-orm';
import { schema } from '../db/index.js';
import { findOrCreateUser } from './accounts.js';
import { inTransaction, newId, normalizeEmail, type EngineDeps, type Tx } from './context.js';
import { define, DomainError, PolicyViolation, SeatLimitReached } from './errors.js';
import { recordEvent } from './events.js';
import type { OrganizationId, UserId } from './ids.js';
import { adjustSeats, lockOrganization, requireSeats, requireSingleOrgAllows, type MemberRow } from './organization-state.js';
import { openSecret, sealSecret } from './secret-box.js';
import { generateSecret, hashSecret } from './secrets.js';
import type { SsoKind, SsoSettings } from './sso-config.js';

/** How long a sign-in may take at the IdP. */
export const SSO_TRANSACTION_TTL_MS = 10 * 60_000;
/** How long the one-time code a return URL carries stays exchangeable. */
export const SSO_CODE_TTL_MS = 60_000;
/** How long a session from a sign-in lasts. */
export const SSO_SESSION_TTL_MS = 8 * 3_600_000;

/** The sign-in in flight is not one this browser may finish: unknown, expired, used, another browser, or a return URL off the list. */
export class SsoTransactionInvalid extends DomainError {
  constructor(
    readonly reason: 'unknown' | 'expired' | 'used' | 'browserMismatch' | 'returnUrlNotAllowed',
    message: string,
  ) {
    super(`sso.transaction_${reason === 'browserMismatch' ? 'browser_mismatch' : reason === 'returnUrlNotAllowed' ? 'return_url' : reason}`, message);
  }
}

export type SsoRefusalReason =
  | 'memberRevoked'
  | 'notMember'
  | 'noSeat'
  | 'emailMissing'
  | 'emailUnverified'
  | 'identityConflict'
  | 'policy'
  | 'disabled';

/** A verified identity that may not sign in here. Nothing changed; an event records the refusal. */
export class SsoSignInRefused extends DomainError {
  constructor(
    readonly reason: SsoRefusalReason,
    message: string,
    readonly memberId?: string,
  ) {
    super('sso.refused', message);
  }
}

export class SsoCodeInvalid extends define('sso.code_invalid', 'The sign-in code is invalid, used or expired') {}

export interface BeginInput {
  returnTo?: string | undefined;
  /** The random value of a cookie the adapter set in the starting browser (OIDC); its hash binds the transaction. */
  browserKey?: string | undefined;
}

/** What the adapter keeps with the transaction: the SAML request id, the OIDC nonce and PKCE verifier. */
export interface TransactionData {
  requestId?: string | undefined;
  secrets?: Record<string, string> | undefined;
}

export interface TakenTransaction {
  organizationId: OrganizationId;
  revision: number;
  requestId: string | null;
  secrets: Record<string, string>;
  returnTo: string | null;
}

const secretsContext = (id: string) => ({ context: `sso-transaction:${id}` });

/**
 * Starts a sign-in: checks `returnTo` against the organization's list (exact match), then lets
 * `build` make the IdP request with the transaction's opaque key (the OIDC state, the SAML
 * RelayState) and stores what it returns. The key is returned once; only its hash is kept.
 */
export async function beginSignIn<R extends TransactionData>(
  deps: EngineDeps,
  settings: SsoSettings,
  input: BeginInput,
  build: (key: string) => Promise<R>,
): Promise<R & { key: string }> {
  if (input.returnTo !== undefined && !settings.returnUrls.includes(input.returnTo)) {
    throw new SsoTransactionInvalid('returnUrlNotAllowed', 'The return URL is not on the organization’s list');
  }
  const key = generateSecret('st');
  const built = await build(key);
  const id = newId();
  const now = deps.clock();
  await deps.db.insert(schema.ssoTransactions).values({
    organizationId: settings.organizationId,
    id,
    keyHash: hashSecret(key),
    kind: settings.kind,
    revision: settings.revision,
    browserHash: input.browserKey ? hashSecret(input.browserKey) : null,
    secretsSealed: built.secrets ? sealSecret(deps.encryptionKey, JSON.stringify(built.secrets), secretsContext(id)) : null,
    requestId: built.requestId ?? null,
    returnTo: input.returnTo ?? null,
    createdAt: now,
    expiresAt: new Date(now.getTime() + SSO_TRANSACTION_TTL_MS),
  });
  return { ...built, key };
}

/**
 * Takes the transaction `key` names, once: a second take of the same key, an expired one, one of
 * another organization or protocol, or one started in another browser is refused. Taking it uses
 * it up whatever the IdP's answer turns out to be.
 */
export async function takeSignIn(
  deps: EngineDeps,
  input: { key: string; organizationId: string; kind: SsoKind; browserKey?: string | undefined },
): Promise<TakenTransaction> {
  const t = schema.ssoTransactions;
  const keyHash = hashSecret(input.key);
  const now = deps.clock();
  const [row] = await deps.db
    .update(t)
    .set({ usedAt: now })
    // Only this organization's and protocol's: a key shown at another callback does not use it up.
    .where(and(eq(t.keyHash, keyHash), eq(t.organizationId, input.organizationId), eq(t.kind, input.kind), isNull(t.usedAt)))
    .returning();
  if (!row) {
    const [seen] = await deps.db
      .select({ id: t.id })
      .from(t)
      .where(and(eq(t.keyHash, keyHash), eq(t.organizationId, input.organizationId), eq(t.kind, input.kind)));
    throw seen
      ? new SsoTransactionInvalid('used', 'This sign-in was already completed; start again')
      : new SsoTransactionInvalid('unknown', 'This sign-in is unknown; start again');
  }
  if (row.expiresAt.getTime() <= now.getTime()) throw new SsoTransactionInvalid('expired', 'This sign-in took too long; start again');
  if (row.browserHash && (!input.browserKey || hashSecret(input.browserKey) !== row.browserHash)) {
    throw new SsoTransactionInvalid('browserMismatch', 'This sign-in was started in another browser; start again here');
  }
  return {
    organizationId: row.organizationId as OrganizationId,
    revision: row.revision,
    requestId: row.requestId,
    secrets: row.secretsSealed ? JSON.parse(openSecret(deps.encryptionKey, row.secretsSealed, secretsContext(row.id))) : {},
    returnTo: row.returnTo,
  };
}

/** Records a SAML assertion id until it expires; false when it was seen before (a replay). */
export async function rememberAssertion(deps: EngineDeps, organizationId: string, assertionId: string, expiresAt: Date): Promise<boolean> {
  const inserted = await deps.db
    .insert(schema.ssoReplays)
    .values({ organizationId, assertionId, expiresAt })
    .onConflictDoNothing()
    .returning({ id: schema.ssoReplays.assertionId });
  return inserted.length === 1;
}

/** An identity the adapter verified (ID token and userinfo, or a signed assertion). */
export interface VerifiedIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  /** False when the IdP says it has not verified the email: such an email links and provisions nobody. Null: not said. */
  emailVerified?: boolean | null;
  name: string | null;
}

export type SignInResult =
  | { kind: 'session'; token: string; user: { id: string; email: string; name: string | null }; organizationId: string; expiresAt: string }
  | { kind: 'code'; code: string; returnTo: string };

/**
 * The membership a verified identity leads to, in one transaction: the member linked to this IdP
 * subject; else the member of its email if it is invited (or, on a domain this organization
 * verified, already accepted or confirmed), which is accepted and linked; else, when the
 * organization allows it and has a seat, a new member (role user, accepted) provisioned just in
 * time. Revoked members and, without JIT, non-members are refused, and the refusal is recorded as
 * an event after the transaction rolled back, so nothing else changes.
 */
export async function completeSignIn(
  deps: EngineDeps,
  settings: SsoSettings,
  identity: VerifiedIdentity,
  options: { returnTo?: string | null | undefined },
): Promise<SignInResult> {
  try {
    return await inTransaction(deps, (tx) => signIn(tx, settings, identity, options.returnTo ?? null));
  } catch (error) {
    if (error instanceof SsoSignInRefused) {
      await inTransaction(deps, (tx) =>
        recordEvent(tx, {
          type: 'sso.signInRefused',
          actor: { system: 'sso' },
          organizationId: settings.organizationId,
          ...(error.memberId ? { memberId: error.memberId } : {}),
        }),
      );
    }
    throw error;
  }
}

async function signIn(tx: Tx, settings: SsoSettings, identity: VerifiedIdentity, returnTo: string | null): Promise<SignInResult> {
  const org = await lockOrganization(tx, settings.organizationId);
  const [config] = await tx.db
    .select({ enabled: schema.ssoConfigs.enabled, kind: schema.ssoConfigs.kind })
    .from(schema.ssoConfigs)
    .where(eq(schema.ssoConfigs.organizationId, org.id));
  if (!config?.enabled || config.kind !== settings.kind) throw new SsoSignInRefused('disabled', 'SSO is not enabled for this organization');

  const m = schema.members;
  const si = schema.ssoIdentities;
  const [linked] = await tx.db
    .select({ member: m, identityId: si.id })
    .from(si)
    .innerJoin(m, eq(m.id, si.memberId))
    .where(and(eq(si.organizationId, org.id), eq(si.issuer, identity.issuer), eq(si.subject, identity.subject)));
  let member: MemberRow | undefined = linked?.member;
  const firstSignIn = !linked;
  const email = identity.email ? normalizeEmail(identity.email) : null;

  if (!member) {
    if (!email) throw new SsoSignInRefused('emailMissing', 'The identity provider sent no email address for this person');
    if (identity.emailVerified === false) {
      throw new SsoSignInRefused('emailUnverified', 'The identity provider has not verified this person’s email address');
    }
    const [byEmail] = await tx.db
      .select()
      .from(m)
      .where(and(eq(m.organizationId, org.id), eq(sql`lower(${m.email})`, email)));
    if (byEmail) {
      const [other] = await tx.db.select({ id: si.id }).from(si).where(eq(si.memberId, byEmail.id));
      if (other) {
        throw new SsoSignInRefused('identityConflict', 'This member signs in with another identity at the identity provider', byEmail.id);
      }
      if (byEmail.status !== 'invited' && byEmail.status !== 'revoked' && !(await domainVerified(tx, org.id, email))) {
        throw new SsoSignInRefused(
          'identityConflict',
          'This member was not invited through SSO; verify the email domain or ask an admin to reinvite them',
          byEmail.id,
        );
      }
      member = byEmail;
    }
  }
  if (member?.status === 'revoked') throw new SsoSignInRefused('memberRevoked', 'This member’s access is revoked', member.id);

  let userId: UserId;
  if (!member) {
    if (!settings.jit) throw new SsoSignInRefused('notMember', 'This person is not a member of the organization');
    try {
      requireSeats(org, 1);
    } catch (error) {
      if (error instanceof SeatLimitReached) throw new SsoSignInRefused('noSeat', 'The organization has no free seat');
      throw error;
    }
    userId = await accountFor(tx, org.id, email!, identity.name);
    await requireSingleOrgFor(tx, org.id, userId);
    const [row] = await tx.db
      .insert(m)
      .values({
        organizationId: org.id,
        id: newId(),
        userId,
        email: email!,
        name: identity.name,
        role: 'user',
        status: 'accepted',
        createdAt: tx.now,
        updatedAt: tx.now,
      })
      .returning();
    member = row!;
    await adjustSeats(tx, org, 1);
    await recordEvent(tx, { type: 'member.invited', actor: { system: 'sso' }, organizationId: org.id, memberId: member.id });
    await recordEvent(tx, { type: 'member.accepted', actor: { userId }, organizationId: org.id, memberId: member.id });
  } else if (member.status === 'invited') {
    userId = await accountFor(tx, org.id, member.email, identity.name ?? member.name, member.id);
    await requireSingleOrgFor(tx, org.id, userId, member.id);
    const [row] = await tx.db
      .update(m)
      .set({ status: 'accepted', userId, name: member.name ?? identity.name, updatedAt: tx.now })
      .where(and(eq(m.id, member.id), eq(m.status, 'invited')))
      .returning();
    member = row!;
    await recordEvent(tx, { type: 'member.accepted', actor: { userId }, organizationId: org.id, memberId: member.id });
  } else {
    userId = member.userId as UserId;
  }

  if (firstSignIn) {
    await tx.db.insert(si).values({
      organizationId: org.id,
      id: newId(),
      issuer: identity.issuer,
      subject: identity.subject,
      memberId: member.id,
      createdAt: tx.now,
      lastSignInAt: tx.now,
    });
    await recordEvent(tx, { type: 'member.firstSsoLogin', actor: { userId }, organizationId: org.id, memberId: member.id });
  } else {
    await tx.db.update(si).set({ lastSignInAt: tx.now }).where(eq(si.id, linked.identityId));
  }
  return issueSession(tx, userId, org.id as OrganizationId, returnTo);
}

/**
 * The account a sign-in attaches to the member: a new one for an email without an account. An
 * existing account (which may be staff of a provider, or a member elsewhere) is attached only on a
 * domain this organization verified: otherwise whoever runs the IdP could sign in as anyone whose
 * email they type. That person accepts their invitation by its mailed link instead.
 */
async function accountFor(tx: Tx, organizationId: string, email: string, name: string | null, memberId?: string): Promise<UserId> {
  const [existing] = await tx.db.select({ id: schema.users.id }).from(schema.users).where(eq(sql`lower(${schema.users.email})`, email));
  if (existing && !(await domainVerified(tx, organizationId, email))) {
    throw new SsoSignInRefused(
      'identityConflict',
      'This email already has a Portico account; accept the invitation by its mailed link, or verify the email domain',
      memberId,
    );
  }
  return (await findOrCreateUser(tx, email, name)).id as UserId;
}

async function requireSingleOrgFor(tx: Tx, organizationId: string, userId: UserId, memberId?: string): Promise<void> {
  try {
    await requireSingleOrgAllows(tx, organizationId, userId);
  } catch (error) {
    if (error instanceof PolicyViolation) throw new SsoSignInRefused('policy', error.message, memberId);
    throw error;
  }
}

async function domainVerified(tx: Tx, organizationId: string, email: string): Promise<boolean> {
  const domain = email.slice(email.lastIndexOf('@') + 1);
  const d = schema.claimedDomains;
  const [row] = await tx.db
    .select({ id: d.id })
    .from(d)
    .where(and(eq(d.organizationId, organizationId), eq(d.domain, domain), sql`${d.verifiedAt} is not null`));
  return row !== undefined;
}

async function issueSession(tx: Tx, userId: UserId, organizationId: OrganizationId, returnTo: string | null): Promise<SignInResult> {
  const expiresAt = new Date(tx.now.getTime() + SSO_SESSION_TTL_MS);
  const base = { id: newId(), userId, organizationId, kind: 'sso', createdAt: tx.now, expiresAt };
  if (returnTo) {
    const code = generateSecret('pc');
    await tx.db.insert(schema.sessions).values({
      ...base,
      codeHash: hashSecret(code),
      codeExpiresAt: new Date(tx.now.getTime() + SSO_CODE_TTL_MS),
    });
    return { kind: 'code', code, returnTo };
  }
  const token = generateSecret('ps');
  await tx.db.insert(schema.sessions).values({ ...base, tokenHash: hashSecret(token) });
  const [user] = await tx.db.select().from(schema.users).where(eq(schema.users.id, userId));
  return {
    kind: 'session',
    token,
    user: { id: user!.id, email: user!.email, name: user!.name },
    organizationId,
    expiresAt: expiresAt.toISOString(),
  };
}

/** Exchanges a one-time code (from a return URL) for its session token, once and within a minute. */
export async function exchangeSignInCode(deps: EngineDeps, code: string): Promise<Extract<SignInResult, { kind: 'session' }>> {
  const s = schema.sessions;
  const token = generateSecret('ps');
  const now = deps.clock();
  const [row] = await deps.db
    .update(s)
    .set({ codeHash: null, codeExpiresAt: null, tokenHash: hashSecret(token) })
    .where(and(eq(s.codeHash, hashSecret(code)), gt(s.codeExpiresAt, now), isNull(s.tokenHash)))
    .returning();
  if (!row) throw new SsoCodeInvalid();
  const [user] = await deps.db.select().from(schema.users).where(eq(schema.users.id, row.userId));
  return {
    kind: 'session',
    token,
    user: { id: user!.id, email: user!.email, name: user!.name },
    organizationId: row.organizationId!,
    expiresAt: row.expiresAt.toISOString(),
  };
}

/** Deletes what has expired: transactions, replay entries, sessions and unexchanged codes. */
export async function pruneSignIns(deps: EngineDeps): Promise<void> {
  const now = deps.clock();
  await deps.db.delete(schema.ssoTransactions).where(lt(schema.ssoTransactions.expiresAt, now));
  await deps.db.delete(schema.ssoReplays).where(lt(schema.ssoReplays.expiresAt, now));
  await deps.db.delete(schema.sessions).where(lt(schema.sessions.expiresAt, now));
  await deps.db
    .delete(schema.sessions)
    .where(and(isNull(schema.sessions.tokenHash), lt(schema.sessions.codeExpiresAt, now)));
}

