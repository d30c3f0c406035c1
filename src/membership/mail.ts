/**
 * Mails the engine sends. They are written to the outbox in the caller's transaction; the sender
 * in `src/mail` delivers them, so a rolled-back change never mails and a crash never loses one.
 */
import { desc, eq } from 'drizzle-orm';
import { schema, type Db } from '../db/index.js';
import { newId, type Tx } from './context.js';

export interface Mail {
  to: string;
  subject: string;
  text: string;
}

export async function enqueueMail(tx: Tx, mail: Mail): Promise<void> {
  await tx.db.insert(schema.outbox).values({
    id: newId(),
    recipient: mail.to,
    subject: mail.subject,
    body: mail.text,
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

/** The newest mails of the outbox, for the operator (e.g. to read a setup link without SMTP). */
export async function listOutbox(db: Db, query: { recipient?: string | undefined }) {
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
    text: r.body,
    status: r.status,
    attempts: r.attempts,
    createdAt: r.createdAt.toISOString(),
    sentAt: r.sentAt?.toISOString() ?? null,
  }));
}
