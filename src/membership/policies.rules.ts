/** Policy types, their data schemas and their dependencies. Pure; no I/O. */
import { z } from 'zod';

const flag = z.boolean().optional();
const none = z.union([z.null(), z.strictObject({})]).optional();

/** Each type's data, validated strictly: unknown keys and out-of-range values are refused. */
export const POLICY_DATA = {
  twoFactorAuthentication: none,
  masterPassword: z
    .strictObject({
      minComplexity: z.number().int().min(0).max(4).nullable().optional(),
      minLength: z.number().int().min(12).max(128).nullable().optional(),
      requireUpper: flag,
      requireLower: flag,
      requireNumbers: flag,
      requireSpecial: flag,
      enforceOnLogin: flag,
    })
    .optional(),
  passwordGenerator: z
    .strictObject({
      overridePasswordType: z.enum(['password', 'passphrase']).nullable().optional(),
      minLength: z.number().int().min(5).max(128).nullable().optional(),
      useUpper: flag,
      useLower: flag,
      useNumbers: flag,
      useSpecial: flag,
      minNumbers: z.number().int().min(0).max(9).nullable().optional(),
      minSpecial: z.number().int().min(0).max(9).nullable().optional(),
      minNumberWords: z.number().int().min(3).max(20).nullable().optional(),
      capitalize: flag,
      includeNumber: flag,
    })
    .optional(),
  singleOrg: none,
  requireSso: none,
  personalOwnership: none,
  disableSend: none,
  sendOptions: z.strictObject({ disableHideEmail: flag }).optional(),
  resetPassword: z.strictObject({ autoEnrollEnabled: z.boolean() }).optional(),
  maximumVaultTimeout: z
    .strictObject({ minutes: z.number().int().min(1).max(525_600), action: z.enum(['lock', 'logOut']).nullable().optional() })
    .optional(),
  disablePersonalVaultExport: none,
} as const;

export type PolicyType = keyof typeof POLICY_DATA;
export const POLICY_TYPES = Object.keys(POLICY_DATA) as PolicyType[];

export const POLICY_TYPE_CODES: Record<PolicyType, number> = {
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
};

/** A policy cannot be enabled while one it needs is off, nor a needed one disabled while a dependent is on. */
export const POLICY_NEEDS: Partial<Record<PolicyType, PolicyType[]>> = {
  requireSso: ['singleOrg'],
  resetPassword: ['singleOrg'],
  maximumVaultTimeout: ['singleOrg'],
};

export const isPolicyType = (value: string): value is PolicyType => Object.hasOwn(POLICY_DATA, value);

/** Policies that need `type`. */
export const dependentsOf = (type: PolicyType): PolicyType[] =>
  POLICY_TYPES.filter((candidate) => POLICY_NEEDS[candidate]?.includes(type));
