/**
 * Mailed one-time tokens. Only their hash is stored; each is valid 120 hours and used once.
 */
import { and, eq, isNull } from 'drizzle-orm';
import { schema } from '../db/index.js';
import { newId, type Tx } from './context.js';
import { InvitationInvalid } from './errors.js';
import { generateSecret, hashSecret } from './secrets.js';

export const INVITATION_TTL_MS = 120 * 3_600_000;

export type InvitationKind = 'providerSetup' | 'providerUser' | 'member';
export type InvitationRow = typeof schema.invitations.$inferSelect;

/**
 * Issues a token for one invitee, replacing any earlier unused token of the same target (a
 * `fresh` target has none). Returns the token, which only the mail carries.
 */
export async function issueInvitation(
  tx: Tx,
  target: {
    kind: InvitationKind;
    email: string;
    providerId?: string | undefined;
    providerUserId?: string | undefined;
    organizationId?: string | undefined;
    memberId?: string | undefined;
  },
  options: { token?: string; fresh?: boolean } = {},
): Promise<string> {
  const i = schema.invitations;
  if (!options.fresh && target.memberId) await tx.db.delete(i).where(and(eq(i.memberId, target.memberId), isNull(i.usedAt)));
  if (!options.fresh && target.providerUserId) {
    await tx.db.delete(i).where(and(eq(i.providerUserId, target.providerUserId), isNull(i.usedAt)));
  }
  const token = options.token ?? generateSecret('inv');
  await tx.db.insert(i).values({
    id: newId(),
    kind: target.kind,
    tokenHash: hashSecret(token),
    email: target.email,
    providerId: target.providerId ?? null,
    providerUserId: target.providerUserId ?? null,
    organizationId: target.organizationId ?? null,
    memberId: target.memberId ?? null,
    expiresAt: new Date(tx.now.getTime() + INVITATION_TTL_MS),
    createdAt: tx.now,
  });
  return token;
}

/** Voids a member's open invitations (its address changed: the old mailbox's token must not accept it). */
export async function voidMemberInvitations(tx: Tx, memberId: string): Promise<void> {
  const i = schema.invitations;
  await tx.db.delete(i).where(and(eq(i.memberId, memberId), isNull(i.usedAt)));
}

/**
 * Claims an unused, unexpired token of one of `kinds` and marks it used, in the caller's
 * transaction: the claim is undone if the acceptance that follows fails.
 */
export async function claimInvitation(tx: Tx, token: string, kinds: readonly InvitationKind[]): Promise<InvitationRow> {
  const i = schema.invitations;
  const [row] = await tx.db
    .update(i)
    .set({ usedAt: tx.now })
    .where(and(eq(i.tokenHash, hashSecret(token)), isNull(i.usedAt)))
    .returning();
  if (!row || !kinds.includes(row.kind as InvitationKind) || row.expiresAt <= tx.now) throw new InvitationInvalid();
  return row;
}
