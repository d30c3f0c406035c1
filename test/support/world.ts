/**
 * A typed world for engine tests: the engine over a test database with an injected clock, and
 * seeds that go through the engine itself, as the people involved would. The operator creates a
 * provider, its admin reads the setup link from the outbox and completes setup; invitees read
 * their tokens from the outbox, accept, and are confirmed. Nothing is inserted behind the
 * engine's back, so every seed also exercises the rules it relies on.
 */
import { and, inArray, isNull, sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import { schema, type Db } from '../../src/db/index.js';
import {
  createEngine,
  type Engine,
  type Member,
  type MemberStatus,
  type Organization,
  type Permissions,
  type Principal,
  type Provider,
  type ProviderHandle,
  type ProviderUser,
  type Role,
} from '../../src/membership/index.js';
import { hashSecret } from '../../src/membership/secrets.js';
import { openTestDatabase, type Driver, type TestDatabase } from './db.js';

export const SYSTEM_TOKEN = 'test-operator-token-0123456789abcdef0123456789';
/** ENCRYPTION_KEY of test engines: fixed, so a test can open what the engine sealed. */
export const TEST_ENCRYPTION_KEY = 'test-encryption-key-0123456789abcdef0123456789';
export const OPERATOR: Principal = { kind: 'system' };
export const PUBLIC_URL = 'http://portico.test';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
/** The start of every test's time. */
export const EPOCH = new Date('2026-03-01T12:00:00.000Z');

export interface TestClock {
  now: Date;
  advance(ms: number): void;
}

/** Someone with an account: the email, the user id and the principal its API token resolves to. */
export interface Person {
  email: string;
  userId: string;
  principal: Principal;
  apiToken: string;
}

export interface SetUpProvider {
  provider: Provider;
  admin: Person & { providerUserId: string };
}

export type ProviderUserStatus = 'invited' | 'accepted' | 'confirmed';
export type ProviderUserType = 'admin' | 'serviceUser';

export interface SeededProviderUser {
  providerUser: ProviderUser;
  /** Present once the invitation is accepted. */
  person?: Person;
}

export interface SeededMember {
  member: Member;
  /** Present once the invitation is accepted. */
  person?: Person;
}

export type ClientInput = Parameters<ProviderHandle['createClient']>[0];

/** A managed client with its set-up provider and that provider's first admin. */
export interface ManagedClient extends SetUpProvider {
  org: Organization;
}

/** Every row of every table, for "changes nothing" assertions. */
export type Snapshot = Record<string, unknown[]>;

export type World = ReturnType<typeof createWorld>;

/** A fresh world over `db` (already migrated and truncated): clock at EPOCH, operator token known. */
export function createWorld(db: Db) {
  const clock: TestClock = {
    now: EPOCH,
    advance(ms) {
      this.now = new Date(this.now.getTime() + ms);
    },
  };
  const engine: Engine = createEngine(
    { db, clock: () => clock.now, publicUrl: PUBLIC_URL, encryptionKey: TEST_ENCRYPTION_KEY },
    { systemToken: SYSTEM_TOKEN },
  );

  /**
   * The token mailed to `email`, read from the link of the newest mail whose invitation is still
   * open (else of the newest mail with a link), as its recipient would read it. Bodies are sealed at
   * rest, so they are read as the operator reads them: from the outbox, newest first.
   */
  async function mailedToken(email: string): Promise<string> {
    const rows = await engine.listOutbox(OPERATOR, { recipient: email });
    const tokens = rows.flatMap((r) => {
      const link = r.text.match(/https?:\/\/\S+/)?.[0];
      const token = link ? new URL(link).searchParams.get('token') : null;
      return token ? [{ token }] : [];
    });
    if (tokens.length === 0) throw new Error(`no mailed token for ${email}`);
    const open = await db
      .select({ tokenHash: schema.invitations.tokenHash })
      .from(schema.invitations)
      .where(and(inArray(schema.invitations.tokenHash, tokens.map((t) => hashSecret(t.token))), isNull(schema.invitations.usedAt)));
    const openHashes = new Set(open.map((r) => r.tokenHash));
    const candidates = tokens.filter((t) => openHashes.has(hashSecret(t.token)));
    // Newest first (the outbox's writing order), preferring a token that is still open.
    return (candidates[0] ?? tokens[0]!).token;
  }

  async function personOf(email: string, apiToken: string): Promise<Person> {
    const principal = await engine.authenticate(apiToken);
    if (principal.kind !== 'user') throw new Error('an API token resolved to the operator');
    return { email: email.toLowerCase(), userId: principal.userId, principal, apiToken };
  }

  /** The operator creates a provider; returns it and the setup token mailed to its admin. */
  async function createProvider(input: { name?: string; adminEmail?: string } = {}) {
    const adminEmail = input.adminEmail ?? 'alice@msp.example';
    const provider = await engine.createProvider(OPERATOR, { name: input.name ?? 'Acme MSP', adminEmail });
    return { provider, setupToken: await mailedToken(adminEmail) };
  }

  /** A provider through setup: active, with its first confirmed admin. */
  async function setUpProvider(
    input: { name?: string; adminEmail?: string; billingEmail?: string } = {},
  ): Promise<SetUpProvider> {
    const adminEmail = input.adminEmail ?? 'alice@msp.example';
    const { setupToken } = await createProvider({ name: input.name, adminEmail });
    const done = await engine.completeProviderSetup({ token: setupToken, billingEmail: input.billingEmail });
    const admin = await personOf(adminEmail, done.apiToken);
    const users = await (await engine.provider(done.provider.id, admin.principal)).listUsers();
    const providerUserId = users.find((u) => u.userId === admin.userId)!.id;
    return { provider: done.provider, admin: { ...admin, providerUserId } };
  }

  /** A provider user invited by `by`, then (as asked) accepted and confirmed. */
  async function addProviderUser(
    providerId: string,
    by: Principal,
    input: { email: string; type?: ProviderUserType; status?: ProviderUserStatus },
  ): Promise<SeededProviderUser> {
    const handle = await engine.provider(providerId, by);
    const { invited } = await handle.inviteUsers({ emails: [input.email], type: input.type ?? 'admin' });
    let providerUser = invited[0]!;
    const status = input.status ?? 'confirmed';
    if (status === 'invited') return { providerUser };
    const accepted = await engine.acceptInvitation({ token: await mailedToken(input.email) });
    const person = await personOf(input.email, accepted.apiToken!);
    if (status === 'confirmed') providerUser = await handle.confirmUser(providerUser.id);
    else providerUser = (await handle.listUsers()).find((u) => u.id === providerUser.id)!;
    return { providerUser, person };
  }

  async function createClient(providerId: string, by: Principal, input: Partial<ClientInput> = {}): Promise<Organization> {
    const handle = await engine.provider(providerId, by);
    return handle.createClient({ name: 'Contoso', plan: 'enterprise', seats: 10, ...input });
  }

  /** A set-up provider and one managed client of it. */
  async function managedClient(input: Partial<ClientInput> = {}): Promise<ManagedClient> {
    const setUp = await setUpProvider();
    const org = await createClient(setUp.provider.id, setUp.admin.principal, input);
    return { ...setUp, org };
  }

  /** A member invited by `by`, then (as asked) accepted, confirmed, or revoked from `revokedFrom`. */
  async function addMember(
    organizationId: string,
    by: Principal,
    input: {
      email: string;
      role?: Role;
      permissions?: Permissions;
      status?: MemberStatus;
      revokedFrom?: Exclude<MemberStatus, 'revoked'>;
    },
  ): Promise<SeededMember> {
    const org = await engine.organization(organizationId, by);
    const { invited } = await org.inviteMembers({
      emails: [input.email],
      role: input.role ?? 'user',
      permissions: input.permissions,
    });
    let member = invited[0]!;
    const status = input.status ?? 'confirmed';
    const reach = status === 'revoked' ? (input.revokedFrom ?? 'confirmed') : status;
    let person: Person | undefined;
    if (reach !== 'invited') {
      const accepted = await engine.acceptInvitation({ token: await mailedToken(input.email) });
      person = await personOf(input.email, accepted.apiToken!);
      member = accepted.member!;
      if (reach === 'confirmed') member = await org.confirmMember(member.id);
    }
    if (status === 'revoked') member = await org.revokeMember(member.id);
    return person ? { member, person } : { member };
  }

  /**
   * A self-managed organization: a client whose confirmed owner was confirmed, then unlinked from
   * its provider. Provider users no longer count as its owners.
   */
  async function selfManagedOrg(input: Partial<ClientInput> & { ownerEmail?: string } = {}) {
    const client = await managedClient({ ...input, ownerEmail: undefined });
    const owner = await addMember(client.org.id, client.admin.principal, {
      email: input.ownerEmail ?? 'olivia@contoso.example',
      role: 'owner',
    });
    const org = await (await engine.provider(client.provider.id, client.admin.principal)).unlinkClient(client.org.id);
    return { ...client, org, owner: owner as Required<SeededMember> };
  }

  async function eventCount(): Promise<number> {
    const [row] = await db.select({ n: sql<number>`count(*)::int` }).from(schema.events);
    return row!.n;
  }

  /** Every event row in writing order. */
  async function eventRows() {
    return db.select().from(schema.events).orderBy(schema.events.seq);
  }

  /** Every row of every table (API tokens without their last use, which reading a token moves). */
  async function snapshot(): Promise<Snapshot> {
    const tables = rowsOf(
      await db.execute(sql`select table_name from information_schema.tables where table_schema = 'public' order by 1`),
    ).map((r) => String(r.table_name));
    const result: Snapshot = {};
    for (const table of tables) {
      const rows = rowsOf(await db.execute(sql.raw(`select * from "${table}"`))).map((row) => {
        const { last_used_at: _lastUse, ...rest } = row;
        return JSON.stringify(rest);
      });
      result[table] = rows.sort();
    }
    return result;
  }

  /**
   * Runs a change that must be refused with `code` and asserts it changed nothing: every table,
   * the event log included, reads back the same.
   */
  async function expectRefusedUnchanged(change: () => Promise<unknown>, code: string): Promise<void> {
    const before = await snapshot();
    // Some engine calls refuse synchronously (a permission checked before any I/O).
    await expect(Promise.resolve().then(change)).rejects.toMatchObject({ code });
    expect(await snapshot()).toEqual(before);
  }

  return {
    db,
    clock,
    engine,
    mailedToken,
    personOf,
    createProvider,
    setUpProvider,
    addProviderUser,
    createClient,
    managedClient,
    addMember,
    selfManagedOrg,
    eventCount,
    eventRows,
    snapshot,
    expectRefusedUnchanged,
  };
}

/** `db.execute` answers `{ rows }` on PGlite and an array on postgres.js. */
function rowsOf(result: unknown): Record<string, unknown>[] {
  return (Array.isArray(result) ? result : (result as { rows: Record<string, unknown>[] }).rows) as Record<
    string,
    unknown
  >[];
}

/** Asserts `work` is refused with the domain error `code` (whether it throws or rejects). */
export async function expectCode(work: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  await expect(typeof work === 'function' ? Promise.resolve().then(work) : work).rejects.toMatchObject({ code });
}

/**
 * One migrated database of `driver` for the enclosing describe, emptied before each test, and a
 * fresh world over it: call the returned function inside a test.
 */
export function useWorld(driver: Driver): () => World {
  let testDb: TestDatabase | undefined;
  let world: World | undefined;
  beforeAll(async () => {
    testDb = await openTestDatabase(driver);
  });
  afterAll(async () => {
    await testDb?.close();
  });
  beforeEach(async () => {
    await testDb!.truncate();
    world = createWorld(testDb!.database.db);
  });
  return () => world!;
}
