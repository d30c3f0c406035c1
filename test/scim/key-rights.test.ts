/**
 * A SCIM key carries no more rights than the person who issued it (issue 6): a key an admin issues
 * cannot touch owners, one a custom manager issues grants only that manager's flags, and the
 * manager of a user must be a user of the same organization.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { confirmedMember, must } from '../support/http-seed.js';
import {
  CORE_USER,
  ENTERPRISE_USER,
  expectScim,
  expectScimError,
  patchOp,
  restMember,
  scimClient,
  snapshot,
  uniqueEmail,
  useScimApp,
  type ScimOrg,
} from '../support/scim.js';

describeEachDriver('SCIM key rights', (driver) => {
  const s = useScimApp(driver);

  /** An Enterprise organization with a confirmed owner, and a SCIM key issued by `issuer`. */
  async function organizationWithKeyFrom(issuer: 'owner' | 'admin' | 'custom') {
    const provisioned = await s.organization({ plan: 'enterprise' });
    const owner = await confirmedMember(s.t, provisioned.oid, s.provider.adminToken, { role: 'owner' });
    const person =
      issuer === 'owner'
        ? owner
        : await confirmedMember(s.t, provisioned.oid, s.provider.adminToken, {
            role: issuer,
            ...(issuer === 'custom' ? { permissions: { manageScim: true, manageUsers: true } } : {}),
          });
    const issued = must(await s.t.request('POST', `/api/v1/organizations/${provisioned.oid}/scim/rotate`, { token: person.token }), 200, 'rotate key');
    const org = scimClient(s.t, { oid: provisioned.oid, baseUrl: issued.baseUrl, token: issued.token, adminToken: s.provider.adminToken });
    return { org, owner, person };
  }

  async function expectUnchangedRefusal(org: ScimOrg, request: () => Promise<any>, status: number, scimType?: string) {
    const before = await snapshot(s.t, org.oid);
    expectScimError(await request(), status, scimType);
    expect(await snapshot(s.t, org.oid)).toEqual(before);
  }

  it("an admin's key cannot revoke, rename or remove the owner, but provisions users", async () => {
    const { org, owner } = await organizationWithKeyFrom('admin');
    await expectUnchangedRefusal(org, () => org.patch(`/Users/${owner.memberId}`, patchOp({ op: 'replace', path: 'active', value: false })), 403);
    await expectUnchangedRefusal(org, () => org.patch(`/Users/${owner.memberId}`, patchOp({ op: 'replace', path: 'userName', value: uniqueEmail() })), 403);
    await expectUnchangedRefusal(org, () => org.put(`/Users/${owner.memberId}`, { schemas: [CORE_USER], userName: owner.email, displayName: 'Renamed' }), 403);
    await expectUnchangedRefusal(org, () => org.delete(`/Users/${owner.memberId}`), 403);
    const user = expectScim(await org.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), 201);
    expectScim(await org.patch(`/Users/${user.id}`, patchOp({ op: 'replace', path: 'active', value: false })), 200);
  });

  it("a custom manager's key cannot touch admins, which the manager cannot either", async () => {
    const { org } = await organizationWithKeyFrom('custom');
    const admin = await confirmedMember(s.t, org.oid, s.provider.adminToken, { role: 'admin' });
    await expectUnchangedRefusal(org, () => org.delete(`/Users/${admin.memberId}`), 403);
    await expectUnchangedRefusal(org, () => org.patch(`/Users/${admin.memberId}`, patchOp({ op: 'replace', path: 'active', value: false })), 403);
    expect((await restMember(s.t, org, admin.memberId)).body.status).toBe('confirmed');
  });

  it("an owner's key (and a provider user's) may manage owners", async () => {
    const { org } = await organizationWithKeyFrom('owner');
    const second = await confirmedMember(s.t, org.oid, s.provider.adminToken, { role: 'owner' });
    expectScim(await org.patch(`/Users/${second.memberId}`, patchOp({ op: 'replace', path: 'active', value: false })), 200);
    expect((await restMember(s.t, org, second.memberId)).body.status).toBe('revoked');
  });

  it('a custom member holding manageScim without manageUsers cannot issue a key', async () => {
    const org = await s.organization({ plan: 'enterprise' });
    const custom = await confirmedMember(s.t, org.oid, s.provider.adminToken, { role: 'custom', permissions: { manageScim: true } });
    const before = await snapshot(s.t, org.oid);
    const res = await s.t.request('POST', `/api/v1/organizations/${org.oid}/scim/rotate`, { token: custom.token });
    expect(res.status).toBe(403);
    expect(await snapshot(s.t, org.oid)).toEqual(before);
    // The key issued before still works.
    expectScim(await org.get('/Users?count=1'), 200);
  });

  it('a manager must be a user of the same organization', async () => {
    const a = await s.organization();
    const b = await s.organization();
    const foreign = expectScim(await b.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), 201);
    const local = expectScim(await a.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), 201);
    const withForeign = (userName: string) => ({
      schemas: [CORE_USER, ENTERPRISE_USER],
      userName,
      [ENTERPRISE_USER]: { manager: { value: foreign.id } },
    });
    await expectUnchangedRefusal(a, () => a.post('/Users', withForeign(uniqueEmail())), 400, 'invalidValue');
    await expectUnchangedRefusal(a, () => a.put(`/Users/${local.id}`, withForeign(local.userName)), 400, 'invalidValue');
    for (const value of [foreign.id, '00000000-0000-4000-8000-000000000000', 'not-an-id']) {
      await expectUnchangedRefusal(
        a,
        () => a.patch(`/Users/${local.id}`, patchOp({ op: 'add', path: `${ENTERPRISE_USER}:manager`, value })),
        400,
        'invalidValue',
      );
    }
    const manager = expectScim(await a.post('/Users', { schemas: [CORE_USER], userName: uniqueEmail() }), 201);
    const patched = expectScim(
      await a.patch(`/Users/${local.id}`, patchOp({ op: 'add', path: `${ENTERPRISE_USER}:manager`, value: manager.id })),
      200,
    );
    expect(patched[ENTERPRISE_USER].manager).toEqual({ value: manager.id });
  });
});
