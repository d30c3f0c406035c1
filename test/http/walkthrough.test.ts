/**
 * The README walkthrough, end to end through the real app: create a provider, complete setup,
 * invite and confirm a provider user, create a client, invite and confirm a member, read events.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';

describeEachDriver('walkthrough', (driver) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(driver);
  });
  afterAll(() => t.close());

  it('takes a provider from creation to a confirmed member of a client, with every step in the event log', async () => {
    const created = await t.request('POST', '/api/v1/providers', {
      token: SYSTEM_TOKEN,
      body: { name: 'Acme MSP', adminEmail: 'Alice@Acme.example' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'Acme MSP', status: 'pending', statusCode: 0 });
    const pid = created.body.id as string;

    const setupToken = await t.mailedToken('alice@acme.example');
    const setup = await t.request('POST', '/api/v1/providers/setup', {
      body: { token: setupToken, name: 'Acme Managed Services', billingEmail: 'billing@acme.example' },
    });
    expect(setup.status).toBe(200);
    expect(setup.body.provider).toMatchObject({ id: pid, status: 'active', name: 'Acme Managed Services' });
    expect(setup.body.user.email).toBe('alice@acme.example');
    const alice = setup.body.apiToken as string;

    // The setup token is single-use.
    const again = await t.request('POST', '/api/v1/providers/setup', { body: { token: setupToken } });
    expect(again.status).toBe(400);
    expect(again.body.code).toBe('invitation.invalid');

    const invited = await t.request('POST', `/api/v1/providers/${pid}/users`, {
      token: alice,
      body: { emails: ['bob@acme.example'], type: 'serviceUser' },
    });
    expect(invited.status).toBe(201);
    const bobId = invited.body.invited[0].id as string;
    expect(invited.body.invited[0]).toMatchObject({ status: 'invited', type: 'serviceUser' });

    const accepted = await t.request('POST', '/api/v1/invitations/accept', {
      body: { token: await t.mailedToken('bob@acme.example'), name: 'Bob' },
    });
    expect(accepted.status).toBe(200);
    const bob = accepted.body.apiToken as string;
    // Accepted is not enough to act.
    expect((await t.request('GET', `/api/v1/providers/${pid}/clients`, { token: bob })).status).toBe(404);

    const confirmed = await t.request('POST', `/api/v1/providers/${pid}/users/${bobId}/confirm`, { token: alice });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body.status).toBe('confirmed');

    const client = await t.request('POST', `/api/v1/providers/${pid}/clients`, {
      token: alice,
      body: { name: 'Contoso', plan: 'enterprise', seats: 10, ownerEmail: 'carol@contoso.example' },
    });
    expect(client.status).toBe(201);
    expect(client.body).toMatchObject({ status: 'managed', billingEmail: 'billing@acme.example', providerId: pid });
    const oid = client.body.id as string;

    // Bob, a confirmed service user, administers the client as an owner.
    const members = await t.request('POST', `/api/v1/organizations/${oid}/members`, {
      token: bob,
      body: { emails: ['dave@contoso.example'], role: 'user' },
    });
    expect(members.status).toBe(201);
    const daveId = members.body.invited[0].id as string;

    const daveAccept = await t.request('POST', '/api/v1/invitations/accept', {
      body: { token: await t.mailedToken('dave@contoso.example') },
    });
    expect(daveAccept.status).toBe(200);
    expect(daveAccept.body.member).toMatchObject({ id: daveId, status: 'accepted' });

    const daveConfirm = await t.request('POST', `/api/v1/organizations/${oid}/members/${daveId}/confirm`, { token: bob });
    expect(daveConfirm.status).toBe(200);
    expect(daveConfirm.body.status).toBe('confirmed');

    const orgEvents = await t.request('GET', `/api/v1/organizations/${oid}/events`, { token: alice });
    expect(orgEvents.status).toBe(200);
    const types = (orgEvents.body.data as { type: string }[]).map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining(['client.created', 'member.invited', 'member.accepted', 'member.confirmed', 'organization.accessed']),
    );
    const confirmEvent = orgEvents.body.data.find((e: { type: string }) => e.type === 'member.confirmed');
    expect(confirmEvent).toMatchObject({ code: 1501, memberId: daveId, actor: { providerUserId: bobId } });

    const providerEvents = await t.request('GET', `/api/v1/providers/${pid}/events`, { token: alice });
    expect(providerEvents.status).toBe(200);
    expect((providerEvents.body.data as { type: string }[]).map((e) => e.type)).toEqual(
      expect.arrayContaining(['provider.created', 'provider.setupCompleted', 'providerUser.invited', 'providerUser.confirmed', 'client.created']),
    );
    // Service users may not read the provider event log.
    expect((await t.request('GET', `/api/v1/providers/${pid}/events`, { token: bob })).status).toBe(403);
  });
});
