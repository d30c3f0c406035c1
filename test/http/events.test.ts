/**
 * The event endpoints: newest first, pages of 50 walked by continuationToken, the default 30-day
 * window, and the hourly organization.accessed event of provider users. Time moves by the
 * injected clock only.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { confirmedMember, countEvents, createClient, must, serviceUser, setupProvider, uniqueEmail } from '../support/http-seed.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

interface EventView {
  id: string;
  type: string;
  code: number | null;
  date: string;
  actor: Record<string, string>;
  providerId?: string;
  organizationId?: string;
  collectionId?: string;
  providerUserId?: string;
}

describeEachDriver('event endpoints', (driver) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(driver);
  });
  afterAll(() => t.close());

  /** Every page of an event list, following continuationToken to the end. */
  async function walk(path: string, token: string): Promise<{ pages: EventView[][]; tokens: (string | undefined)[] }> {
    const pages: EventView[][] = [];
    const tokens: (string | undefined)[] = [];
    let next: string | undefined;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const res = await t.request('GET', next ? `${path}${sep}continuationToken=${encodeURIComponent(next)}` : path, { token });
      expect(res.status).toBe(200);
      pages.push(res.body.data);
      next = res.body.continuationToken;
      tokens.push(next);
      expect(pages.length).toBeLessThan(20);
    } while (next);
    return { pages, tokens };
  }

  it('organization events come newest first in pages of 50, and the continuationToken walks every event exactly once', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const base = `/api/v1/organizations/${org.id}`;
    const created: string[] = [];
    for (let i = 0; i < 61; i++) {
      const c = must(await t.request('POST', `${base}/collections`, { token: SYSTEM_TOKEN, body: { name: `C${i}` } }), 201, 'collection');
      created.push(c.id);
      // Some events share a timestamp: the order must still be total and stable across pages.
      if (i % 3 === 0) t.clock.advance(1_000);
    }
    const total = await countEvents(t, { organizationId: org.id });
    expect(total).toBe(62); // client.created + 61 collection.created

    const { pages, tokens } = await walk(`${base}/events`, SYSTEM_TOKEN);
    expect(pages.map((page) => page.length)).toEqual([50, 12]);
    expect(tokens[0]).toEqual(expect.any(String));
    expect(tokens[1]).toBeUndefined();
    const all = pages.flat();
    expect(new Set(all.map((e) => e.id)).size).toBe(total);
    const dates = all.map((e) => Date.parse(e.date));
    expect(dates).toEqual([...dates].sort((x, y) => y - x));
    expect(all.filter((e) => e.type === 'collection.created').map((e) => e.collectionId)).toEqual([...created].reverse());
    expect(all.at(-1)).toMatchObject({ type: 'client.created', code: 1900, providerId: p.pid, organizationId: org.id });
    expect(all[0]).toEqual({
      id: expect.any(String),
      type: 'collection.created',
      code: 1300,
      date: expect.any(String),
      actor: { system: 'api' },
      organizationId: org.id,
      collectionId: created.at(-1),
    });
  });

  it('provider events come newest first in pages of 50, walked exactly once by the continuationToken', async () => {
    const p = await setupProvider(t);
    for (let batch = 0; batch < 3; batch++) {
      const emails = Array.from({ length: 20 }, () => uniqueEmail('pu'));
      must(await t.request('POST', `/api/v1/providers/${p.pid}/users`, { token: p.adminToken, body: { emails, type: 'serviceUser' } }), 201, 'invite');
      t.clock.advance(MINUTE);
    }
    const total = await countEvents(t, { providerId: p.pid });
    expect(total).toBe(62); // provider.created, provider.setupCompleted, 60 providerUser.invited
    const { pages } = await walk(`/api/v1/providers/${p.pid}/events`, p.adminToken);
    expect(pages.map((page) => page.length)).toEqual([50, 12]);
    const all = pages.flat();
    expect(new Set(all.map((e) => e.id)).size).toBe(total);
    expect(all.slice(-2).map((e) => e.type)).toEqual(['provider.setupCompleted', 'provider.created']);
    expect(all[0]).toMatchObject({
      type: 'providerUser.invited',
      code: 1800,
      actor: { providerUserId: p.adminProviderUserId, userId: p.adminUserId },
      providerId: p.pid,
      providerUserId: expect.any(String),
    });
  });

  it('by default only the last 30 days are listed; start and end reach further back and bound the range', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const base = `/api/v1/organizations/${org.id}`;
    const old = must(await t.request('POST', `${base}/collections`, { token: SYSTEM_TOKEN, body: { name: 'Old' } }), 201, 'old');
    const oldDate = t.clock.now;
    t.clock.advance(31 * DAY);
    const recent = must(await t.request('POST', `${base}/collections`, { token: SYSTEM_TOKEN, body: { name: 'New' } }), 201, 'new');

    const collectionIds = async (query: string) =>
      (await t.request('GET', `${base}/events${query}`, { token: SYSTEM_TOKEN })).body.data
        .filter((e: EventView) => e.type === 'collection.created')
        .map((e: EventView) => e.collectionId);
    expect(await collectionIds('')).toEqual([recent.id]);
    const start = new Date(oldDate.getTime() - DAY).toISOString();
    expect(await collectionIds(`?start=${start}`)).toEqual([recent.id, old.id]);
    const end = new Date(oldDate.getTime() + DAY).toISOString();
    expect(await collectionIds(`?start=${start}&end=${end}`)).toEqual([old.id]);
    // end alone: the 30 days before it.
    expect(await collectionIds(`?end=${end}`)).toEqual([old.id]);

    const providerEvents = (await t.request('GET', `/api/v1/providers/${p.pid}/events`, { token: p.adminToken })).body.data;
    expect(providerEvents).toEqual([]);
  });

  it("a provider user's first request to an organization in an hour records one organization.accessed event on both logs; the next within the hour none; after 61 minutes another", async () => {
    const p = await setupProvider(t);
    const su = await serviceUser(t, p);
    const org = await createClient(t, p);
    const base = `/api/v1/organizations/${org.id}`;
    // The operator reads the logs: its requests record no access.
    const accessed = async () => {
      const onOrg = (await t.request('GET', `${base}/events`, { token: SYSTEM_TOKEN })).body.data.filter(
        (e: EventView) => e.type === 'organization.accessed',
      );
      const onProvider = (await t.request('GET', `/api/v1/providers/${p.pid}/events`, { token: p.adminToken })).body.data.filter(
        (e: EventView) => e.type === 'organization.accessed',
      );
      expect(onProvider).toEqual(onOrg);
      return onOrg as EventView[];
    };
    expect(await accessed()).toEqual([]);

    expect((await t.request('GET', `${base}/members`, { token: su.token })).status).toBe(200);
    const first = await accessed();
    expect(first).toEqual([
      {
        id: expect.any(String),
        type: 'organization.accessed',
        code: 1603,
        date: t.clock.now.toISOString(),
        actor: { providerUserId: su.providerUserId, userId: su.userId },
        providerId: p.pid,
        organizationId: org.id,
      },
    ]);

    t.clock.advance(59 * MINUTE);
    expect((await t.request('GET', base, { token: su.token })).status).toBe(200);
    expect((await t.request('GET', `${base}/groups`, { token: su.token })).status).toBe(200);
    expect(await accessed()).toHaveLength(1);

    t.clock.advance(2 * MINUTE);
    expect((await t.request('GET', base, { token: su.token })).status).toBe(200);
    const again = await accessed();
    expect(again).toHaveLength(2);
    expect(again[0]!.date).toBe(t.clock.now.toISOString());
  });

  it('members and the operator opening an organization record no access event; each provider user records its own', async () => {
    const p = await setupProvider(t);
    const su = await serviceUser(t, p);
    const org = await createClient(t, p);
    const base = `/api/v1/organizations/${org.id}`;
    const member = await confirmedMember(t, org.id, SYSTEM_TOKEN, { role: 'admin' });
    expect((await t.request('GET', base, { token: member.token })).status).toBe(200);
    expect((await t.request('GET', base, { token: SYSTEM_TOKEN })).status).toBe(200);
    expect(await countEvents(t, { organizationId: org.id, type: 'organization.accessed' })).toBe(0);

    expect((await t.request('GET', base, { token: su.token })).status).toBe(200);
    expect((await t.request('GET', base, { token: p.adminToken })).status).toBe(200);
    const events = (await t.request('GET', `${base}/events`, { token: SYSTEM_TOKEN })).body.data.filter(
      (e: EventView) => e.type === 'organization.accessed',
    );
    expect(events.map((e: EventView) => e.actor.providerUserId).sort()).toEqual([su.providerUserId, p.adminProviderUserId].sort());
  });
});
