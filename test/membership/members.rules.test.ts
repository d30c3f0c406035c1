/**
 * The pure rules of membership (src/membership/members.rules.ts): reference codes, plan features,
 * seats, permissions and who may manage whom. No database.
 */
import { describe, expect, it } from 'vitest';
import type { MemberId } from '../../src/membership/ids.js';
import {
  checkMemberManagement,
  holds,
  MEMBER_STATUS_CODES,
  normalizePermissions,
  occupiesSeat,
  PERMISSION_FLAGS,
  PLAN_FEATURES,
  requireAdministrator,
  requireFeature,
  requirePermission,
  ROLE_CODES,
  type Feature,
  type OrganizationCaller,
  type Permissions,
  type Role,
} from '../../src/membership/members.rules.js';

const caller = (role: Role, permissions: Permissions = {}): OrganizationCaller => ({
  actor: { userId: 'u' as never },
  role,
  permissions,
  memberId: 'm' as MemberId,
});

const codeOf = (work: () => unknown): string | undefined => {
  try {
    work();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
};

describe('reference codes', () => {
  it('member statuses are invited 0, accepted 1, confirmed 2, revoked -1', () => {
    expect(MEMBER_STATUS_CODES).toEqual({ invited: 0, accepted: 1, confirmed: 2, revoked: -1 });
  });

  it('roles are owner 0, admin 1, user 2, custom 4', () => {
    expect(ROLE_CODES).toEqual({ owner: 0, admin: 1, user: 2, custom: 4 });
  });

  it('custom roles have exactly the twelve flags of domain.md', () => {
    expect([...PERMISSION_FLAGS].sort()).toEqual(
      [
        'accessEventLogs',
        'accessImportExport',
        'accessReports',
        'createNewCollections',
        'editAnyCollection',
        'deleteAnyCollection',
        'manageGroups',
        'managePolicies',
        'manageSso',
        'manageUsers',
        'manageResetPassword',
        'manageScim',
      ].sort(),
    );
  });
});

describe('plan features', () => {
  const teams: Feature[] = ['groups', 'collections', 'events', 'scim', 'directorySync'];
  const enterpriseOnly: Feature[] = ['policies', 'sso', 'customRoles', 'selfHosting', 'accountRecovery'];

  it('Teams has groups, collections, events, SCIM and directory sync, and nothing more', () => {
    expect([...PLAN_FEATURES.teams].sort()).toEqual([...teams].sort());
    for (const feature of teams) expect(() => requireFeature('teams', feature)).not.toThrow();
  });

  it('Enterprise adds policies, SSO, custom roles, self-hosting and account recovery', () => {
    expect([...PLAN_FEATURES.enterprise].sort()).toEqual([...teams, ...enterpriseOnly].sort());
    for (const feature of [...teams, ...enterpriseOnly]) expect(() => requireFeature('enterprise', feature)).not.toThrow();
  });

  it('a feature the plan lacks is a clear error naming plan and feature', () => {
    for (const feature of enterpriseOnly) {
      expect(() => requireFeature('teams', feature)).toThrow(expect.objectContaining({ code: 'organization.plan_feature', details: { plan: 'teams', feature } }));
    }
    expect(codeOf(() => requireFeature('family', 'groups'))).toBe('organization.plan_feature');
  });
});

describe('seats', () => {
  it('invited, accepted and confirmed members occupy a seat; revoked ones do not', () => {
    expect(['invited', 'accepted', 'confirmed', 'revoked'].map(occupiesSeat)).toEqual([true, true, true, false]);
  });
});

describe('permissions', () => {
  it('owners and admins hold every flag', () => {
    for (const role of ['owner', 'admin'] as const) {
      for (const flag of PERMISSION_FLAGS) expect(holds(caller(role), flag)).toBe(true);
    }
  });

  it('a user holds no flag, even if flags were stored for it', () => {
    for (const flag of PERMISSION_FLAGS) expect(holds(caller('user', { [flag]: true }), flag)).toBe(false);
  });

  it('a custom member holds exactly the flags set to true', () => {
    const custom = caller('custom', { manageGroups: true, accessReports: false });
    expect(PERMISSION_FLAGS.filter((flag) => holds(custom, flag))).toEqual(['manageGroups']);
    expect(codeOf(() => requirePermission(custom, 'manageGroups'))).toBeUndefined();
    expect(codeOf(() => requirePermission(custom, 'accessReports'))).toBe('auth.permission_denied');
  });

  it('users, and custom members without any flag, do not administer; everyone else does', () => {
    expect(codeOf(() => requireAdministrator(caller('user')))).toBe('auth.permission_denied');
    expect(codeOf(() => requireAdministrator(caller('custom', {})))).toBe('auth.permission_denied');
    expect(codeOf(() => requireAdministrator(caller('custom', { manageUsers: false })))).toBe('auth.permission_denied');
    expect(codeOf(() => requireAdministrator(caller('custom', { accessReports: true })))).toBeUndefined();
    expect(codeOf(() => requireAdministrator(caller('admin')))).toBeUndefined();
    expect(codeOf(() => requireAdministrator(caller('owner')))).toBeUndefined();
  });

  it('stored permissions keep only known flags that are set, and only for custom roles', () => {
    const given = { manageUsers: true, manageGroups: false, madeUp: true } as Permissions;
    expect(normalizePermissions('custom', given)).toEqual({ manageUsers: true });
    expect(normalizePermissions('custom', undefined)).toEqual({});
    for (const role of ['owner', 'admin', 'user'] as const) expect(normalizePermissions(role, given)).toBeNull();
  });
});

describe('who manages whom', () => {
  const roles: Role[] = ['owner', 'admin', 'user', 'custom'];
  const manager = caller('custom', { manageUsers: true, manageGroups: true });

  it('owners manage every role, including giving and taking the owner role', () => {
    for (const targetRole of roles) {
      for (const newRole of [undefined, ...roles]) {
        expect(codeOf(() => checkMemberManagement(caller('owner'), { targetRole, newRole }))).toBeUndefined();
      }
    }
  });

  it('admins manage everyone but owners, and cannot make anyone an owner', () => {
    for (const targetRole of roles) {
      for (const newRole of [undefined, ...roles]) {
        const touchesOwner = targetRole === 'owner' || newRole === 'owner';
        expect(codeOf(() => checkMemberManagement(caller('admin'), { targetRole, newRole }))).toBe(
          touchesOwner ? 'member.owner_required' : undefined,
        );
      }
    }
  });

  it('a custom member with manageUsers manages users and custom members only', () => {
    for (const targetRole of roles) {
      for (const newRole of [undefined, ...roles]) {
        const touchesOwner = targetRole === 'owner' || newRole === 'owner';
        const touchesAdmin = targetRole === 'admin' || newRole === 'admin';
        const expected = touchesOwner ? 'member.owner_required' : touchesAdmin ? 'auth.permission_denied' : undefined;
        expect(codeOf(() => checkMemberManagement(manager, { targetRole, newRole })), `${targetRole} → ${newRole}`).toBe(expected);
      }
    }
  });

  it('a custom manager grants only flags it holds; withholding a flag is always allowed', () => {
    const grant = (newPermissions: Permissions) =>
      codeOf(() => checkMemberManagement(manager, { targetRole: 'user', newRole: 'custom', newPermissions }));
    expect(grant({ manageGroups: true })).toBeUndefined();
    expect(grant({ manageUsers: true, manageGroups: true })).toBeUndefined();
    expect(grant({ manageGroups: true, managePolicies: true })).toBe('auth.permission_denied');
    expect(grant({ managePolicies: false, manageSso: false })).toBeUndefined();
  });

  it('without manageUsers nobody but owners and admins manages members', () => {
    for (const who of [caller('user'), caller('custom', { manageGroups: true }), caller('custom', { manageUsers: false })]) {
      expect(codeOf(() => checkMemberManagement(who, { targetRole: 'user' }))).toBe('auth.permission_denied');
    }
  });
});
