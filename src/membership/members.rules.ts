/** Pure rules of membership: roles, statuses, permissions, plans. No I/O. */
import type { Actor } from './actor.js';
import { OwnerRequired, PermissionDenied, PlanFeatureMissing } from './errors.js';
import type { MemberId } from './ids.js';

export const MEMBER_STATUSES = ['invited', 'accepted', 'confirmed', 'revoked'] as const;
export type MemberStatus = (typeof MEMBER_STATUSES)[number];
export const MEMBER_STATUS_CODES: Record<MemberStatus, number> = { invited: 0, accepted: 1, confirmed: 2, revoked: -1 };

export const ROLES = ['owner', 'admin', 'user', 'custom'] as const;
export type Role = (typeof ROLES)[number];
export const ROLE_CODES: Record<Role, number> = { owner: 0, admin: 1, user: 2, custom: 4 };

export const PERMISSION_FLAGS = [
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
] as const;
export type PermissionFlag = (typeof PERMISSION_FLAGS)[number];
export type Permissions = Partial<Record<PermissionFlag, boolean>>;

export const PLANS = ['teams', 'enterprise'] as const;
export type Plan = (typeof PLANS)[number];
export type Feature =
  | 'groups'
  | 'collections'
  | 'events'
  | 'scim'
  | 'directorySync'
  | 'policies'
  | 'sso'
  | 'customRoles'
  | 'selfHosting'
  | 'accountRecovery';

const TEAMS_FEATURES: Feature[] = ['groups', 'collections', 'events', 'scim', 'directorySync'];
export const PLAN_FEATURES: Record<Plan, ReadonlySet<Feature>> = {
  teams: new Set(TEAMS_FEATURES),
  enterprise: new Set<Feature>([...TEAMS_FEATURES, 'policies', 'sso', 'customRoles', 'selfHosting', 'accountRecovery']),
};

export function requireFeature(plan: string, feature: Feature): void {
  if (!PLAN_FEATURES[plan as Plan]?.has(feature)) {
    throw new PlanFeatureMissing(`The ${plan} plan does not include ${feature}`, { details: { plan, feature } });
  }
}

/** Seats count invited, accepted and confirmed members; revoked members use none. */
export const occupiesSeat = (status: string): boolean => status !== 'revoked';

/**
 * Who acts inside an organization. Provider users and system actors act as owners without a
 * member row; a member acts with its own role and flags.
 */
export interface OrganizationCaller {
  actor: Actor;
  role: Role;
  permissions: Permissions;
  /** The caller's own member row, if it has one (a provider user may have one too): off limits to it. */
  memberId?: MemberId;
}

/** Whether the caller holds `flag` (owners and admins hold every flag). */
export function holds(caller: OrganizationCaller, flag: PermissionFlag): boolean {
  if (caller.role === 'owner' || caller.role === 'admin') return true;
  return caller.role === 'custom' && caller.permissions[flag] === true;
}

export function requirePermission(caller: OrganizationCaller, flag: PermissionFlag): void {
  if (!holds(caller, flag)) throw new PermissionDenied(`This needs the ${flag} permission`);
}

/** Anyone who administers something may read the organization's members, groups and collections. */
export function requireAdministrator(caller: OrganizationCaller): void {
  if (caller.role === 'user') throw new PermissionDenied('Members with the user role do not administer the organization');
  if (caller.role === 'custom' && !Object.values(caller.permissions).some(Boolean)) {
    throw new PermissionDenied('This custom role grants no administration');
  }
}

/**
 * May the caller create, change, revoke, restore or remove a member whose role is `targetRole`,
 * possibly giving it `newRole` and `newPermissions`? Only owners touch owners; a custom manager
 * touches neither admins nor owners and grants only flags it holds.
 */
export function checkMemberManagement(
  caller: OrganizationCaller,
  change: { targetRole: Role; newRole?: Role | undefined; newPermissions?: Permissions | null | undefined },
): void {
  requirePermission(caller, 'manageUsers');
  const touchesOwner = change.targetRole === 'owner' || change.newRole === 'owner';
  if (touchesOwner && caller.role !== 'owner') throw new OwnerRequired();
  if (caller.role === 'custom') {
    const touchesAdmin = change.targetRole === 'admin' || change.newRole === 'admin';
    if (touchesAdmin) throw new PermissionDenied('A custom role may not manage admins or owners');
    for (const [flag, granted] of Object.entries(change.newPermissions ?? {})) {
      if (granted && caller.permissions[flag as PermissionFlag] !== true) {
        throw new PermissionDenied(`You may not grant ${flag}, which you do not hold`);
      }
    }
  }
}

/** Keeps only the known flags that are set: the stored form of a custom role's permissions. */
export function normalizePermissions(role: Role, permissions: Permissions | null | undefined): Permissions | null {
  if (role !== 'custom') return null;
  const kept: Permissions = {};
  for (const flag of PERMISSION_FLAGS) if (permissions?.[flag]) kept[flag] = true;
  return kept;
}
