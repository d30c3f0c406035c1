/**
 * Policies (domain.md "Policies (Enterprise)"): data validated per type, dependencies on
 * singleOrg both ways, the Enterprise plan only, and the managePolicies permission.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import { expectCode, OPERATOR, useWorld, type World } from '../support/world.js';

describeEachDriver('policies', (driver) => {
  const world = useWorld(driver);

  async function enterprise(w: World) {
    const client = await w.managedClient({ plan: 'enterprise' });
    return { ...client, handle: await w.engine.organization(client.org.id, client.admin.principal) };
  }

  it('every type is listed with its reference code; a type never stored is disabled', async () => {
    const w = world();
    const { handle } = await enterprise(w);
    await handle.putPolicy({ type: 'masterPassword', enabled: true, data: { minLength: 14 } });
    const policies = await handle.listPolicies();
    expect(Object.fromEntries(policies.map((p) => [p.type, p.typeCode]))).toEqual({
      twoFactorAuthentication: 0,
      masterPassword: 1,
      passwordGenerator: 2,
      singleOrg: 3,
      requireSso: 4,
      personalOwnership: 5,
      disableSend: 6,
      sendOptions: 7,
      resetPassword: 8,
      maximumVaultTimeout: 9,
      disablePersonalVaultExport: 10,
    });
    expect(policies.find((p) => p.type === 'masterPassword')).toMatchObject({ enabled: true, data: { minLength: 14 } });
    expect(policies.filter((p) => p.enabled).map((p) => p.type)).toEqual(['masterPassword']);
    expect(policies.find((p) => p.type === 'disableSend')).toMatchObject({ id: null, enabled: false, data: null });
  });

  it('putting a policy again replaces its state and data', async () => {
    const w = world();
    const { handle } = await enterprise(w);
    const first = await handle.putPolicy({ type: 'masterPassword', enabled: true, data: { minLength: 14, requireUpper: true } });
    const second = await handle.putPolicy({ type: 'masterPassword', enabled: false, data: { minLength: 20 } });
    expect(second).toMatchObject({ id: first.id, enabled: false, data: { minLength: 20 } });
    expect((await handle.listPolicies()).find((p) => p.type === 'masterPassword')).toMatchObject({ enabled: false, data: { minLength: 20 } });
  });

  const valid: [string, unknown][] = [
    ['twoFactorAuthentication', undefined],
    ['masterPassword', { minComplexity: 0, minLength: 12, requireUpper: true, requireLower: true, requireNumbers: false, requireSpecial: true, enforceOnLogin: true }],
    ['masterPassword', { minComplexity: 4, minLength: 128 }],
    ['passwordGenerator', { overridePasswordType: 'passphrase', minNumberWords: 4, capitalize: true }],
    ['personalOwnership', {}],
    ['disableSend', null],
    ['sendOptions', { disableHideEmail: true }],
    ['disablePersonalVaultExport', undefined],
  ];
  for (const [type, data] of valid) {
    it(`accepts valid ${type} data ${JSON.stringify(data) ?? ''}`.trim(), async () => {
      const w = world();
      const { handle } = await enterprise(w);
      await expect(handle.putPolicy({ type, enabled: true, data })).resolves.toMatchObject({ type, enabled: true });
    });
  }

  const invalid: [string, unknown][] = [
    ['masterPassword', { minLength: 11 }],
    ['masterPassword', { minLength: 129 }],
    ['masterPassword', { minLength: 12.5 }],
    ['masterPassword', { minComplexity: -1 }],
    ['masterPassword', { minComplexity: 5 }],
    ['masterPassword', { requireUpper: 'yes' }],
    ['masterPassword', { minLength: 14, unknownKey: true }],
    ['masterPassword', 'strong'],
    ['twoFactorAuthentication', { anything: 1 }],
    ['singleOrg', { strict: true }],
    ['passwordGenerator', { minLength: 4 }],
    ['passwordGenerator', { overridePasswordType: 'pin' }],
    ['sendOptions', { disableHideEmail: 'no' }],
    ['resetPassword', { autoEnrollEnabled: 'true' }],
    ['resetPassword', {}],
    ['maximumVaultTimeout', { minutes: 0 }],
    ['maximumVaultTimeout', { minutes: 30, action: 'shutdown' }],
    ['maximumVaultTimeout', { action: 'lock' }],
  ];
  for (const [type, data] of invalid) {
    it(`refuses ${type} data ${JSON.stringify(data)} and changes nothing`, async () => {
      const w = world();
      const { handle } = await enterprise(w);
      // The dependency is satisfied, so only the data can be at fault.
      await handle.putPolicy({ type: 'singleOrg', enabled: true });
      await w.expectRefusedUnchanged(() => handle.putPolicy({ type, enabled: true, data }), 'input.invalid');
    });
  }

  it('an unknown policy type is refused', async () => {
    const w = world();
    const { handle } = await enterprise(w);
    await w.expectRefusedUnchanged(() => handle.putPolicy({ type: 'noPasswords', enabled: true }), 'input.invalid');
    await w.expectRefusedUnchanged(() => handle.putPolicy({ type: 'toString', enabled: true }), 'input.invalid');
  });

  for (const dependent of ['requireSso', 'resetPassword', 'maximumVaultTimeout'] as const) {
    const data = { requireSso: undefined, resetPassword: { autoEnrollEnabled: true }, maximumVaultTimeout: { minutes: 15, action: 'lock' } }[dependent];

    it(`${dependent} cannot be enabled while singleOrg is off`, async () => {
      const w = world();
      const { handle } = await enterprise(w);
      await w.expectRefusedUnchanged(() => handle.putPolicy({ type: dependent, enabled: true, data }), 'policy.dependency');
      await handle.putPolicy({ type: 'singleOrg', enabled: true });
      await handle.putPolicy({ type: 'singleOrg', enabled: false });
      await w.expectRefusedUnchanged(() => handle.putPolicy({ type: dependent, enabled: true, data }), 'policy.dependency');
    });

    it(`singleOrg cannot be disabled while ${dependent} is on, and can once it is off`, async () => {
      const w = world();
      const { handle } = await enterprise(w);
      await handle.putPolicy({ type: 'singleOrg', enabled: true });
      await handle.putPolicy({ type: dependent, enabled: true, data });
      await w.expectRefusedUnchanged(() => handle.putPolicy({ type: 'singleOrg', enabled: false }), 'policy.dependency');
      await handle.putPolicy({ type: dependent, enabled: false, data });
      await expect(handle.putPolicy({ type: 'singleOrg', enabled: false })).resolves.toMatchObject({ enabled: false });
    });
  }

  it('a dependent policy may be stored disabled while singleOrg is off', async () => {
    const w = world();
    const { handle } = await enterprise(w);
    await expect(handle.putPolicy({ type: 'requireSso', enabled: false })).resolves.toMatchObject({ enabled: false });
  });

  it('the Teams plan has no policies: reading and writing them is refused', async () => {
    const w = world();
    const { org, admin } = await w.managedClient({ plan: 'teams' });
    const handle = await w.engine.organization(org.id, admin.principal);
    await expectCode(() => handle.listPolicies(), 'organization.plan_feature');
    await w.expectRefusedUnchanged(() => handle.putPolicy({ type: 'singleOrg', enabled: true }), 'organization.plan_feature');
    await w.expectRefusedUnchanged(
      () => handle.putPolicy({ type: 'masterPassword', enabled: false, data: { minLength: 12 } }),
      'organization.plan_feature',
    );
  });

  it('managing policies needs the managePolicies flag', async () => {
    const w = world();
    const { org, handle } = await enterprise(w);
    const admin = await w.addMember(org.id, OPERATOR, { email: 'adm@contoso.example', role: 'admin' });
    const manager = await w.addMember(org.id, OPERATOR, { email: 'pm@contoso.example', role: 'custom', permissions: { managePolicies: true } });
    const other = await w.addMember(org.id, OPERATOR, { email: 'gm@contoso.example', role: 'custom', permissions: { manageGroups: true } });
    const user = await w.addMember(org.id, OPERATOR, { email: 'u@contoso.example', role: 'user' });

    for (const person of [other.person!, user.person!]) {
      const asPerson = await w.engine.organization(org.id, person.principal);
      await expectCode(() => asPerson.listPolicies(), 'auth.permission_denied');
      await w.expectRefusedUnchanged(() => asPerson.putPolicy({ type: 'disableSend', enabled: true }), 'auth.permission_denied');
    }
    for (const person of [admin.person!, manager.person!]) {
      const asPerson = await w.engine.organization(org.id, person.principal);
      await expect(asPerson.putPolicy({ type: 'disableSend', enabled: true })).resolves.toMatchObject({ enabled: true });
    }
    expect((await handle.listPolicies()).find((p) => p.type === 'disableSend')!.enabled).toBe(true);
  });
});
