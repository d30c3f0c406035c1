/**
 * Mails the engine sends. They are written to the outbox in the caller's transaction; the sender
 * in `src/mail` delivers them, so a rolled-back change never mails and a crash never loses one.
 *
 * A pending mail's body holds a redeemable token (a provider setup or an invitation), so it is
 * stored sealed with ENCRYPTION_KEY: a database dump once completed a provider setup. The sender
 * opens it at send time and keeps it with its tokens blanked; the operator reads it at
 * `GET /api/v1/outbox`.
 */
import { desc, eq } from 'drizzle-orm';
import { schema } from '../db/index.js';
import { newId, type EngineDeps, type Tx } from './context.js';
import { consumeMailBudget } from './rate-limits.js';
import { isSealed, openSecret, sealSecret, SecretUnreadable } from './secret-box.js';

export interface Mail {
  to: string;
  subject: string;
  text: string;
}

export async function enqueueMail(tx: Tx, mail: Mail): Promise<void> {
  await consumeMailBudget(tx, mail.to);
  const id = newId();
  await tx.db.insert(schema.outbox).values({
    id,
    recipient: mail.to,
    subject: mail.subject,
    body: sealBody(tx.deps.encryptionKey, id, mail.text),
    nextAttemptAt: tx.now,
    createdAt: tx.now,
  });
}

/** A link under PUBLIC_URL carrying a mailed token as its `token` query parameter. */
export function tokenLink(publicUrl: string, path: string, token: string): string {
  const url = new URL(path, publicUrl.endsWith('/') ? publicUrl : `${publicUrl}/`);
  url.searchParams.set('token', token);
  return url.toString();
}

export const mails = {
  providerSetup: (to: string, link: string): Mail => ({
    to,
    subject: 'Set up your Portico provider',
    text: `You have been invited to set up a provider on Portico.\n\nComplete the setup within 120 hours:\n${link}\n`,
  }),
  providerUserInvitation: (to: string, providerName: string, link: string): Mail => ({
    to,
    subject: `Join ${providerName} on Portico`,
    text: `You have been invited to join the provider ${providerName}.\n\nAccept within 120 hours:\n${link}\n`,
  }),
  memberInvitation: (to: string, organizationName: string, link: string): Mail => ({
    to,
    subject: `Join ${organizationName} on Portico`,
    text: `You have been invited to join the organization ${organizationName}.\n\nAccept within 120 hours:\n${link}\n`,
  }),
  confirmed: (to: string, name: string): Mail => ({
    to,
    subject: `You are confirmed in ${name}`,
    text: `An administrator of ${name} confirmed your membership. You now have access.\n`,
  }),
};

/** A body sealed for its row, so that a sealed body copied onto another mail cannot be opened. */
export function sealBody(key: string, mailId: string, text: string): string {
  return sealSecret(key, text, { context: `outbox:${mailId}` });
}

/**
 * A stored body in plaintext. Pending and failed bodies are sealed; a sent body is stored plain with
 * its tokens blanked, as is a body written before sealing. Throws `SecretUnreadable` for a body
 * sealed with another ENCRYPTION_KEY.
 */
export function openBody(key: string, row: { id: string; body: string }): string {
  return isSealed(row.body) ? openSecret(key, row.body, { context: `outbox:${row.id}` }) : row.body;
}

/** What the operator reads instead of a body sealed with another key (the key was replaced or lost). */
export const UNREADABLE_BODY = '(unreadable: sealed with another ENCRYPTION_KEY)';

/**
 * The newest mails of the outbox, for the operator (e.g. to read a setup link without SMTP). Sealed
 * bodies are opened: this is the way to read an unsent mail and pass its link on by hand.
 */
export async function listOutbox(
  { db, encryptionKey }: Pick<EngineDeps, 'db' | 'encryptionKey'>,
  query: { recipient?: string | undefined },
) {
  const o = schema.outbox;
  const rows = await db
    .select()
    .from(o)
    .where(query.recipient ? eq(o.recipient, query.recipient.trim().toLowerCase()) : undefined)
    .orderBy(desc(o.seq))
    .limit(100);
  return rows.map((r) => ({
    id: r.id,
    to: r.recipient,
    subject: r.subject,
    text: readableBody(encryptionKey, r),
    status: r.status,
    attempts: r.attempts,
    createdAt: r.createdAt.toISOString(),
    sentAt: r.sentAt?.toISOString() ?? null,
  }));
}

function readableBody(key: string, row: { id: string; body: string }): string {
  try {
    return openBody(key, row);
  } catch (error) {
    // One unreadable mail must not hide the others from the operator.
    if (error instanceof SecretUnreadable) return UNREADABLE_BODY;
    throw error;
  }
}
