/**
 * /api/v1/providers…: providers, provider users and client organizations through the real app,
 * each success beside its refusals (401 lives in route-table.test.ts).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import {
  acceptedMember,
  confirmedMember,
  countEvents,
  countMails,
  createClient,
  expectProblem,
  membersOf,
  must,
  providerUser,
  serviceUser,
  setupProvider,
  tableCounts,
  uniqueEmail,
} from '../support/http-seed.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describeEachDriver('provider routes', (driver) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(driver);
  });
  afterAll(() => t.close());

  // ---- providers ------------------------------------------------------------------------------

  it('the operator creates a pending provider, lists it, and mails its admin a setup link', async () => {
    const adminEmail = uniqueEmail('admin');
    const created = await t.request('POST', '/api/v1/providers', {
      token: SYSTEM_TOKEN,
      body: { name: 'Northwind MSP', adminEmail: adminEmail.toUpperCase() },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: expect.stringMatching(UUID), name: 'Northwind MSP', status: 'pending', statusCode: 0 });
    expect(await t.mailedToken(adminEmail)).toMatch(/^inv_/);

    const listed = await t.request('GET', '/api/v1/providers', { token: SYSTEM_TOKEN });
    expect(listed.status).toBe(200);
    expect(Object.keys(listed.body)).toEqual(['data']);
    expect(listed.body.data).toContainEqual(expect.objectContaining({ id: created.body.id, status: 'pending' }));
  });

  it('only the operator creates or lists providers; a provider admin is refused with 403 and nothing is created', async () => {
    const p = await setupProvider(t);
    const before = await tableCounts(t);
    expectProblem(
      await t.request('POST', '/api/v1/providers', { token: p.adminToken, body: { name: 'X', adminEmail: uniqueEmail() } }),
      403,
      'auth.permission_denied',
    );
    expectProblem(await t.request('GET', '/api/v1/providers', { token: p.adminToken }), 403, 'auth.permission_denied');
    expect(await tableCounts(t)).toEqual(before);
  });

  it('completing setup activates the provider and makes the invited person its first confirmed admin; the token works once', async () => {
    const adminEmail = uniqueEmail('admin');
    const created = must(
      await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 'Fabrikam', adminEmail } }),
      201,
      'create',
    );
    const token = await t.mailedToken(adminEmail);
    const setup = await t.request('POST', '/api/v1/providers/setup', {
      body: { token, name: 'Fabrikam Managed', billingEmail: 'Billing@Fabrikam.example' },
    });
    expect(setup.status).toBe(200);
    expect(setup.body).toMatchObject({
      provider: { id: created.id, name: 'Fabrikam Managed', status: 'active', statusCode: 2, billingEmail: 'billing@fabrikam.example' },
      user: { id: expect.stringMatching(UUID), email: adminEmail },
      apiToken: expect.any(String),
    });
    const users = await t.request('GET', `/api/v1/providers/${created.id}/users`, { token: setup.body.apiToken });
    expect(users.status).toBe(200);
    expect(users.body.data).toEqual([
      expect.objectContaining({ email: adminEmail, type: 'admin', typeCode: 0, status: 'confirmed', statusCode: 2 }),
    ]);

    const before = await tableCounts(t);
    expectProblem(await t.request('POST', '/api/v1/providers/setup', { body: { token } }), 400, 'invitation.invalid');
    expectProblem(
      await t.request('POST', '/api/v1/providers/setup', { body: { token: 'inv_never-issued' } }),
      400,
      'invitation.invalid',
    );
    expect(await tableCounts(t)).toEqual(before);
  });

  it('a setup token older than 120 hours is refused with 400 and the provider stays pending', async () => {
    const adminEmail = uniqueEmail('admin');
    const created = must(
      await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, body: { name: 'Late', adminEmail } }),
      201,
      'create',
    );
    const token = await t.mailedToken(adminEmail);
    t.clock.advance(120 * 3_600_000 + 1);
    expectProblem(await t.request('POST', '/api/v1/providers/setup', { body: { token } }), 400, 'invitation.invalid');
    const provider = await t.request('GET', `/api/v1/providers/${created.id}`, { token: SYSTEM_TOKEN });
    expect(provider.body.status).toBe('pending');
  });

  it('GET /providers/:pid shows the provider to its admins and confirmed service users', async () => {
    const p = await setupProvider(t);
    const su = await serviceUser(t, p);
    for (const token of [p.adminToken, su.token, SYSTEM_TOKEN]) {
      const res = await t.request('GET', `/api/v1/providers/${p.pid}`, { token });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ id: p.pid, status: 'active', type: 'msp', enabled: true });
    }
  });

  it('a provider user that accepted but is not confirmed cannot see the provider (404)', async () => {
    const p = await setupProvider(t);
    const pending = await providerUser(t, p, { until: 'accepted' });
    expectProblem(await t.request('GET', `/api/v1/providers/${p.pid}`, { token: pending.token }), 404, 'provider.not_found');
  });

  it('a provider admin edits the provider; a service user is refused with 403 and nothing changes', async () => {
    const p = await setupProvider(t);
    const su = await serviceUser(t, p);
    const edited = await t.request('PATCH', `/api/v1/providers/${p.pid}`, {
      token: p.adminToken,
      body: { name: 'Renamed MSP', businessName: 'Renamed Ltd' },
    });
    expect(edited.status).toBe(200);
    expect(edited.body).toMatchObject({ id: p.pid, name: 'Renamed MSP', businessName: 'Renamed Ltd' });

    const events = await countEvents(t, { providerId: p.pid });
    expectProblem(
      await t.request('PATCH', `/api/v1/providers/${p.pid}`, { token: su.token, body: { name: 'Hijacked' } }),
      403,
      'auth.permission_denied',
    );
    expect((await t.request('GET', `/api/v1/providers/${p.pid}`, { token: p.adminToken })).body.name).toBe('Renamed MSP');
    expect(await countEvents(t, { providerId: p.pid })).toBe(events);
  });

  it('the operator disables a provider with its clients, locking its staff out (403), and enabling brings them back', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    expectProblem(await t.request('POST', `/api/v1/providers/${p.pid}/disable`, { token: p.adminToken }), 403, 'auth.permission_denied');

    const disabled = await t.request('POST', `/api/v1/providers/${p.pid}/disable`, { token: SYSTEM_TOKEN });
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({ id: p.pid, enabled: false });
    expect((await t.request('GET', `/api/v1/organizations/${org.id}`, { token: SYSTEM_TOKEN })).body.enabled).toBe(false);
    expectProblem(await t.request('GET', `/api/v1/providers/${p.pid}`, { token: p.adminToken }), 403, 'provider.disabled');
    expectProblem(await t.request('GET', `/api/v1/organizations/${org.id}`, { token: p.adminToken }), 403, 'provider.disabled');

    const enabled = await t.request('POST', `/api/v1/providers/${p.pid}/enable`, { token: SYSTEM_TOKEN });
    expect(enabled.status).toBe(200);
    expect(enabled.body.enabled).toBe(true);
    const reopened = await t.request('GET', `/api/v1/organizations/${org.id}`, { token: p.adminToken });
    expect(reopened.status).toBe(200);
    expect(reopened.body.enabled).toBe(true);
  });

  it('a disabled client refuses changes with 403 organization.disabled and changes nothing', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    must(await t.request('POST', `/api/v1/providers/${p.pid}/disable`, { token: SYSTEM_TOKEN }), 200, 'disable');
    const before = await tableCounts(t);
    expectProblem(
      await t.request('POST', `/api/v1/organizations/${org.id}/members`, {
        token: SYSTEM_TOKEN,
        body: { emails: [uniqueEmail()], role: 'user' },
      }),
      403,
      'organization.disabled',
    );
    expect(await tableCounts(t)).toEqual(before);
  });

  // ---- provider users -------------------------------------------------------------------------

  it('a provider admin invites provider users, lower-cased, skipping emails already present', async () => {
    const p = await setupProvider(t);
    const a = uniqueEmail('staff');
    const b = uniqueEmail('staff');
    const invited = await t.request('POST', `/api/v1/providers/${p.pid}/users`, {
      token: p.adminToken,
      body: { emails: [a.toUpperCase(), b], type: 'serviceUser' },
    });
    expect(invited.status).toBe(201);
    expect(invited.body.skipped).toEqual([]);
    expect(invited.body.invited).toEqual([
      expect.objectContaining({ id: expect.stringMatching(UUID), email: a, type: 'serviceUser', typeCode: 1, status: 'invited', statusCode: 0 }),
      expect.objectContaining({ email: b, status: 'invited' }),
    ]);
    expect(await countMails(t, a)).toBe(1);

    const again = await t.request('POST', `/api/v1/providers/${p.pid}/users`, {
      token: p.adminToken,
      body: { emails: [a], type: 'admin' },
    });
    expect(again.status).toBe(201);
    expect(again.body).toEqual({ invited: [], skipped: [a] });
    expect(await countMails(t, a)).toBe(1);

    const list = await t.request('GET', `/api/v1/providers/${p.pid}/users`, { token: p.adminToken });
    expect(list.status).toBe(200);
    expect(list.body.data.map((u: { email: string }) => u.email).sort()).toEqual([p.adminEmail, a, b].sort());
  });

  it('confirming a provider user needs an accepted invitation: invited → 409, accepted → confirmed, confirmed again → 409', async () => {
    const p = await setupProvider(t);
    const email = uniqueEmail('staff');
    const invited = must(
      await t.request('POST', `/api/v1/providers/${p.pid}/users`, { token: p.adminToken, body: { emails: [email], type: 'admin' } }),
      201,
      'invite',
    );
    const uid = invited.invited[0].id as string;
    const confirm = () => t.request('POST', `/api/v1/providers/${p.pid}/users/${uid}/confirm`, { token: p.adminToken });

    expectProblem(await confirm(), 409, 'status.invalid');
    const accepted = await t.request('POST', '/api/v1/invitations/accept', { body: { token: await t.mailedToken(email), name: 'Erin' } });
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ user: { email, name: 'Erin' }, apiToken: expect.any(String), providerUserId: uid });

    const confirmed = await confirm();
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ id: uid, status: 'confirmed', type: 'admin' });
    expectProblem(await confirm(), 409, 'status.invalid');
  });

  it('reinvite mails a new token to a user still invited (the old one stops working) and is refused otherwise (409)', async () => {
    const p = await setupProvider(t);
    const email = uniqueEmail('staff');
    const uid = must(
      await t.request('POST', `/api/v1/providers/${p.pid}/users`, { token: p.adminToken, body: { emails: [email], type: 'serviceUser' } }),
      201,
      'invite',
    ).invited[0].id as string;
    const oldToken = await t.mailedToken(email);

    // mailedToken reads the newest mail by time: let the second one be younger.
    t.clock.advance(1);
    const reinvited = await t.request('POST', `/api/v1/providers/${p.pid}/users/${uid}/reinvite`, { token: p.adminToken });
    expect(reinvited.status).toBe(200);
    expect(reinvited.body).toMatchObject({ id: uid, status: 'invited' });
    const newToken = await t.mailedToken(email);
    expect(newToken).not.toBe(oldToken);
    expectProblem(await t.request('POST', '/api/v1/invitations/accept', { body: { token: oldToken } }), 400, 'invitation.invalid');
    expect((await t.request('POST', '/api/v1/invitations/accept', { body: { token: newToken } })).status).toBe(200);

    expectProblem(await t.request('POST', `/api/v1/providers/${p.pid}/users/${uid}/reinvite`, { token: p.adminToken }), 409, 'status.invalid');
  });

  it('an admin changes a provider user\'s type, never its own, and the last confirmed admin is never demoted', async () => {
    const p = await setupProvider(t);
    const su = await serviceUser(t, p);
    const promoted = await t.request('PATCH', `/api/v1/providers/${p.pid}/users/${su.providerUserId}`, {
      token: p.adminToken,
      body: { type: 'admin' },
    });
    expect(promoted.status).toBe(200);
    expect(promoted.body).toMatchObject({ id: su.providerUserId, type: 'admin', typeCode: 0 });

    expectProblem(
      await t.request('PATCH', `/api/v1/providers/${p.pid}/users/${p.adminProviderUserId}`, {
        token: p.adminToken,
        body: { type: 'serviceUser' },
      }),
      403,
      'member.self_action',
    );

    // With a second confirmed admin, one may be demoted; then the last one may not be, even by the operator.
    must(
      await t.request('PATCH', `/api/v1/providers/${p.pid}/users/${su.providerUserId}`, { token: p.adminToken, body: { type: 'serviceUser' } }),
      200,
      'demote',
    );
    const events = await countEvents(t, { providerId: p.pid });
    expectProblem(
      await t.request('PATCH', `/api/v1/providers/${p.pid}/users/${p.adminProviderUserId}`, {
        token: SYSTEM_TOKEN,
        body: { type: 'serviceUser' },
      }),
      409,
      'provider.last_admin',
    );
    const users = (await t.request('GET', `/api/v1/providers/${p.pid}/users`, { token: p.adminToken })).body.data;
    expect(users.find((u: { id: string }) => u.id === p.adminProviderUserId).type).toBe('admin');
    expect(await countEvents(t, { providerId: p.pid })).toBe(events);
  });

  it('removing a provider user deletes it (204); nobody removes themselves or the last confirmed admin', async () => {
    const p = await setupProvider(t);
    const su = await serviceUser(t, p);
    const removed = await t.request('DELETE', `/api/v1/providers/${p.pid}/users/${su.providerUserId}`, { token: p.adminToken });
    expect(removed.status).toBe(204);
    expect(removed.body).toBeUndefined();
    expectProblem(await t.request('GET', `/api/v1/providers/${p.pid}`, { token: su.token }), 404, 'provider.not_found');
    expectProblem(
      await t.request('DELETE', `/api/v1/providers/${p.pid}/users/${su.providerUserId}`, { token: p.adminToken }),
      404,
      'provider_user.not_found',
    );

    expectProblem(
      await t.request('DELETE', `/api/v1/providers/${p.pid}/users/${p.adminProviderUserId}`, { token: p.adminToken }),
      403,
      'member.self_action',
    );
    expectProblem(
      await t.request('DELETE', `/api/v1/providers/${p.pid}/users/${p.adminProviderUserId}`, { token: SYSTEM_TOKEN }),
      409,
      'provider.last_admin',
    );
    expect((await t.request('GET', `/api/v1/providers/${p.pid}`, { token: p.adminToken })).status).toBe(200);
  });

  it('a service user may not manage provider users or read provider events (403), and nothing changes', async () => {
    const p = await setupProvider(t);
    const su = await serviceUser(t, p);
    const other = await providerUser(t, p, { until: 'accepted' });
    const before = await tableCounts(t);
    const base = `/api/v1/providers/${p.pid}`;
    const refused = [
      await t.request('GET', `${base}/users`, { token: su.token }),
      await t.request('POST', `${base}/users`, { token: su.token, body: { emails: [uniqueEmail()], type: 'admin' } }),
      await t.request('POST', `${base}/users/${other.providerUserId}/confirm`, { token: su.token }),
      await t.request('POST', `${base}/users/${other.providerUserId}/reinvite`, { token: su.token }),
      await t.request('PATCH', `${base}/users/${other.providerUserId}`, { token: su.token, body: { type: 'admin' } }),
      await t.request('DELETE', `${base}/users/${other.providerUserId}`, { token: su.token }),
      await t.request('GET', `${base}/events`, { token: su.token }),
    ];
    for (const res of refused) expectProblem(res, 403, 'auth.permission_denied');
    expect(await tableCounts(t)).toEqual(before);
  });

  // ---- clients --------------------------------------------------------------------------------

  it('a provider admin creates a managed client billed to the provider, inviting its owner and a first collection', async () => {
    const p = await setupProvider(t);
    const provider = (await t.request('GET', `/api/v1/providers/${p.pid}`, { token: p.adminToken })).body;
    const ownerEmail = uniqueEmail('owner');
    const created = await t.request('POST', `/api/v1/providers/${p.pid}/clients`, {
      token: p.adminToken,
      body: { name: 'Contoso Ltd', plan: 'teams', seats: 5, ownerEmail, identifier: `Contoso-${Date.now()}`, collectionName: 'Shared' },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      id: expect.stringMatching(UUID),
      identifier: expect.stringMatching(/^contoso-\d+$/),
      name: 'Contoso Ltd',
      plan: 'teams',
      seats: 5,
      status: 'managed',
      statusCode: 0,
      enabled: true,
      providerId: p.pid,
      billingEmail: provider.billingEmail,
    });
    const oid = created.body.id as string;
    const members = await membersOf(t, oid);
    expect(members).toEqual([expect.objectContaining({ email: ownerEmail, role: 'owner', roleCode: 0, status: 'invited' })]);
    expect(await countMails(t, ownerEmail)).toBe(1);
    const collections = await t.request('GET', `/api/v1/organizations/${oid}/collections`, { token: p.adminToken });
    expect(collections.body.data.map((c: { name: string }) => c.name)).toEqual(['Shared']);

    const list = await t.request('GET', `/api/v1/providers/${p.pid}/clients`, { token: p.adminToken });
    expect(list.status).toBe(200);
    expect(list.body.data).toEqual([expect.objectContaining({ id: oid, identifier: created.body.identifier })]);
  });

  it('service users list clients but may not create one (403); a taken identifier is refused (409); neither creates anything', async () => {
    const p = await setupProvider(t);
    const su = await serviceUser(t, p);
    const existing = await createClient(t, p);
    const listed = await t.request('GET', `/api/v1/providers/${p.pid}/clients`, { token: su.token });
    expect(listed.status).toBe(200);
    expect(listed.body.data.map((o: { id: string }) => o.id)).toEqual([existing.id]);

    const before = await tableCounts(t);
    expectProblem(
      await t.request('POST', `/api/v1/providers/${p.pid}/clients`, { token: su.token, body: { name: 'X', plan: 'teams', seats: 1 } }),
      403,
      'auth.permission_denied',
    );
    expectProblem(
      await t.request('POST', `/api/v1/providers/${p.pid}/clients`, {
        token: p.adminToken,
        body: { name: 'Dup', plan: 'teams', seats: 1, identifier: existing.identifier.toUpperCase(), ownerEmail: uniqueEmail() },
      }),
      409,
      'conflict',
    );
    expectProblem(
      await t.request('POST', `/api/v1/providers/${p.pid}/clients`, {
        token: p.adminToken,
        body: { name: 'Bad', plan: 'teams', seats: 1, identifier: '-not valid-' },
      }),
      400,
      'input.invalid',
    );
    expect(await tableCounts(t)).toEqual(before);
  });

  it('admins and service users rename a client and change its seats, never below the seats in use (400)', async () => {
    const p = await setupProvider(t);
    const su = await serviceUser(t, p);
    const org = await createClient(t, p, { seats: 5 });
    const renamed = await t.request('PATCH', `/api/v1/providers/${p.pid}/clients/${org.id}`, {
      token: p.adminToken,
      body: { name: 'Renamed client' },
    });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ id: org.id, name: 'Renamed client', seats: 5 });
    const reseated = await t.request('PATCH', `/api/v1/providers/${p.pid}/clients/${org.id}`, { token: su.token, body: { seats: 2 } });
    expect(reseated.status).toBe(200);
    expect(reseated.body.seats).toBe(2);

    await acceptedMember(t, org.id, p.adminToken);
    await acceptedMember(t, org.id, p.adminToken);
    const events = await countEvents(t, { organizationId: org.id });
    const tooFew = await t.request('PATCH', `/api/v1/providers/${p.pid}/clients/${org.id}`, { token: p.adminToken, body: { seats: 1 } });
    expectProblem(tooFew, 400, 'input.invalid');
    expect(tooFew.body.errors).toEqual({ used: 2 });
    expect((await t.request('GET', `/api/v1/organizations/${org.id}`, { token: SYSTEM_TOKEN })).body.seats).toBe(2);
    expect(await countEvents(t, { organizationId: org.id })).toBe(events);
  });

  it('unlinking a client needs a confirmed owner of its own (409); then it is self-managed and out of the provider\'s reach', async () => {
    const p = await setupProvider(t);
    const su = await serviceUser(t, p);
    const org = await createClient(t, p);
    const unlink = (token: string) => t.request('DELETE', `/api/v1/providers/${p.pid}/clients/${org.id}`, { token });

    expectProblem(await unlink(su.token), 403, 'auth.permission_denied');
    // An owner that is only accepted does not count; neither do the provider's users.
    const owner = await acceptedMember(t, org.id, p.adminToken, { role: 'owner' });
    expectProblem(await unlink(p.adminToken), 409, 'organization.last_owner');
    expect((await t.request('GET', `/api/v1/organizations/${org.id}`, { token: SYSTEM_TOKEN })).body).toMatchObject({
      status: 'managed',
      providerId: p.pid,
    });

    must(await t.request('POST', `/api/v1/organizations/${org.id}/members/${owner.memberId}/confirm`, { token: p.adminToken }), 200, 'confirm');
    const unlinked = await unlink(p.adminToken);
    expect(unlinked.status).toBe(200);
    expect(unlinked.body).toMatchObject({ id: org.id, status: 'created', statusCode: 1, providerId: null });

    expect((await t.request('GET', `/api/v1/providers/${p.pid}/clients`, { token: p.adminToken })).body.data).toEqual([]);
    expectProblem(await t.request('GET', `/api/v1/organizations/${org.id}`, { token: p.adminToken }), 404, 'organization.not_found');
    expectProblem(await unlink(p.adminToken), 404, 'organization.not_found');
    const ownView = await t.request('GET', `/api/v1/organizations/${org.id}`, { token: owner.token });
    expect(ownView.status).toBe(200);
    expect(ownView.body.status).toBe('created');
  });

  it('the provider event log lists provider and client events newest first for admins', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const res = await t.request('GET', `/api/v1/providers/${p.pid}/events`, { token: p.adminToken });
    expect(res.status).toBe(200);
    expect(res.body.continuationToken).toBeUndefined();
    expect(res.body.data.map((e: { type: string }) => e.type)).toEqual(['client.created', 'provider.setupCompleted', 'provider.created']);
    expect(res.body.data[0]).toEqual({
      id: expect.stringMatching(UUID),
      type: 'client.created',
      code: 1900,
      date: expect.any(String),
      actor: { providerUserId: p.adminProviderUserId, userId: p.adminUserId },
      providerId: p.pid,
      organizationId: org.id,
    });
    expect(res.body.data[2].actor).toEqual({ system: 'api' });
  });

  it('the operator acts on a client organization like an owner, without a member row', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const member = await confirmedMember(t, org.id, SYSTEM_TOKEN, { role: 'owner' });
    expect((await membersOf(t, org.id)).map((m) => m.id)).toEqual([member.memberId]);
  });
});
