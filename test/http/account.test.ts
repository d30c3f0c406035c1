/**
 * /api/v1/me, personal tokens, invitation acceptance and the operator's outbox, through the real app.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import {
  confirmedMember,
  createClient,
  expectProblem,
  invitedMember,
  must,
  setupProvider,
  tableCounts,
} from '../support/http-seed.js';

describeEachDriver('account routes', (driver) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(driver);
  });
  afterAll(() => t.close());

  it('/me answers the person with the providers and organizations it belongs to', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const member = await confirmedMember(t, org.id, p.adminToken, { role: 'admin' });

    const admin = await t.request('GET', '/api/v1/me', { token: p.adminToken });
    expect(admin.status).toBe(200);
    expect(admin.body).toEqual({
      user: { id: p.adminUserId, email: p.adminEmail, name: null, createdAt: expect.any(String) },
      providers: [{ providerId: p.pid, providerUserId: p.adminProviderUserId, type: 'admin', status: 'confirmed' }],
      organizations: [],
    });
    const mine = await t.request('GET', '/api/v1/me', { token: member.token });
    expect(mine.body).toMatchObject({
      user: { id: member.userId, email: member.email },
      providers: [],
      organizations: [{ organizationId: org.id, memberId: member.memberId, role: 'admin', status: 'confirmed' }],
    });
  });

  it('a personal token is shown once at creation (201), authenticates, is listed without its secret, and stops at revocation (204)', async () => {
    const p = await setupProvider(t);
    const created = await t.request('POST', '/api/v1/me/tokens', { token: p.adminToken, body: { name: 'ci pipeline' } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ id: expect.any(String), token: expect.stringMatching(/^pt_/) });
    const secret = created.body.token as string;
    expect((await t.request('GET', '/api/v1/me', { token: secret })).body.user.id).toBe(p.adminUserId);

    const list = await t.request('GET', '/api/v1/me/tokens', { token: p.adminToken });
    expect(list.status).toBe(200);
    expect(list.body.data).toContainEqual({ id: created.body.id, name: 'ci pipeline', createdAt: expect.any(String), lastUsedAt: expect.any(String) });
    expect(JSON.stringify(list.body)).not.toContain(secret);

    const revoked = await t.request('DELETE', `/api/v1/me/tokens/${created.body.id}`, { token: p.adminToken });
    expect(revoked.status).toBe(204);
    expectProblem(await t.request('GET', '/api/v1/me', { token: secret }), 401, 'auth.unauthenticated');
    expectProblem(await t.request('DELETE', `/api/v1/me/tokens/${created.body.id}`, { token: p.adminToken }), 404, 'token.not_found');
  });

  it("a person cannot revoke someone else's token (404), which keeps working", async () => {
    const a = await setupProvider(t);
    const b = await setupProvider(t);
    const bToken = must(await t.request('POST', '/api/v1/me/tokens', { token: b.adminToken, body: { name: 'b' } }), 201, 'token');
    expectProblem(await t.request('DELETE', `/api/v1/me/tokens/${bToken.id}`, { token: a.adminToken }), 404, 'token.not_found');
    expect((await t.request('GET', '/api/v1/me', { token: bToken.token })).status).toBe(200);
  });

  it('accepting an invitation while signed in as another person is refused with 403, and the invitation stays usable', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const { memberId, email } = await invitedMember(t, org.id, p.adminToken);
    const invitation = await t.mailedToken(email);
    const before = await tableCounts(t);

    const refused = await t.request('POST', '/api/v1/invitations/accept', { token: p.adminToken, body: { token: invitation } });
    expectProblem(refused, 403, 'invitation.email_mismatch');
    expect(await tableCounts(t)).toEqual(before);

    const accepted = await t.request('POST', '/api/v1/invitations/accept', { body: { token: invitation } });
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ user: { email }, member: { id: memberId, status: 'accepted' }, apiToken: expect.any(String) });
  });

  it('a person signed in with the invited email accepts into the same account', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    // mailedToken reads the newest mail by time: let the invitation be younger than the setup mail.
    t.clock.advance(1);
    await invitedMember(t, org.id, SYSTEM_TOKEN, { email: p.adminEmail.toUpperCase() });
    const accepted = await t.request('POST', '/api/v1/invitations/accept', {
      token: p.adminToken,
      body: { token: await t.mailedToken(p.adminEmail) },
    });
    expect(accepted.status).toBe(200);
    expect(accepted.body.user.id).toBe(p.adminUserId);
  });

  it('a member invitation older than 120 hours is refused with 400 and the member stays invited', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const { memberId, email } = await invitedMember(t, org.id, p.adminToken);
    const token = await t.mailedToken(email);
    t.clock.advance(120 * 3_600_000 + 1);
    const before = await tableCounts(t);
    expectProblem(await t.request('POST', '/api/v1/invitations/accept', { body: { token } }), 400, 'invitation.invalid');
    expect(await tableCounts(t)).toEqual(before);
    const member = await t.request('GET', `/api/v1/organizations/${org.id}/members/${memberId}`, { token: SYSTEM_TOKEN });
    expect(member.body.status).toBe('invited');
  });

  it('the invitation of a member revoked meanwhile is refused with 409 and nothing changes', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const { memberId, email } = await invitedMember(t, org.id, SYSTEM_TOKEN);
    must(await t.request('POST', `/api/v1/organizations/${org.id}/members/${memberId}/revoke`, { token: SYSTEM_TOKEN }), 200, 'revoke');
    const before = await tableCounts(t);
    const res = await t.request('POST', '/api/v1/invitations/accept', { body: { token: await t.mailedToken(email) } });
    expectProblem(res, 409, 'status.invalid');
    expect(await tableCounts(t)).toEqual(before);
  });

  it('the operator reads the outbox newest first, filtered by recipient; anyone else is refused with 403', async () => {
    const p = await setupProvider(t);
    const org = await createClient(t, p);
    const { email } = await invitedMember(t, org.id, SYSTEM_TOKEN);
    const res = await t.request('GET', `/api/v1/outbox?recipient=${encodeURIComponent(email.toUpperCase())}`, { token: SYSTEM_TOKEN });
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual([
      expect.objectContaining({ id: expect.any(String), to: email, status: 'pending', text: expect.stringContaining('http://portico.test/accept?token=') }),
    ]);
    expectProblem(await t.request('GET', '/api/v1/outbox', { token: p.adminToken }), 403, 'auth.permission_denied');
  });
});
