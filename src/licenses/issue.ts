/**
 * Signing a license (design.md, "Licenses for self-hosted clients"). The caller has already decided
 * who may download it and for which organization; this turns the decision into a compact JWS.
 */
import { CompactSign } from 'jose';
import { z } from 'zod';
import { InvalidInput } from '../membership/index.js';
import { installationIdSchema, LICENSE_ALGORITHM, LICENSE_TYPE, toNumericDate, type LicenseClaims } from './claims.js';
import type { IssuerKey } from './keys.js';

export const licenseInputSchema = z
  .object({
    /** PUBLIC_URL of the issuing Portico; becomes `iss`. */
    issuer: z.url(),
    /** Becomes `sub`. */
    organizationId: z.string().min(1),
    installationId: installationIdSchema,
    plan: z.string().min(1),
    seats: z.number().int().nonnegative(),
    features: z.array(z.string().min(1)),
    issuedAt: z.date(),
    /** Defaults to `issuedAt`. */
    notBefore: z.date().optional(),
    expiresAt: z.date(),
  })
  .strict()
  .refine((input) => input.expiresAt > (input.notBefore ?? input.issuedAt), {
    message: 'expiresAt must be after notBefore (or issuedAt)',
    path: ['expiresAt'],
  });

export type LicenseInput = z.input<typeof licenseInputSchema>;

/**
 * Signs a license with `key`: header `{alg: 'EdDSA', kid, typ: 'portico-license+jwt'}`, payload
 * `{iss, sub, installationId, plan, seats, features, iat, nbf, exp}`. Features are deduplicated and
 * sorted. Throws `InvalidInput` listing every bad path, and refuses a key retired at `issuedAt`.
 */
export async function signLicense(
  key: Pick<IssuerKey, 'kid' | 'privateKey' | 'retiredAt'>,
  input: LicenseInput,
): Promise<string> {
  const parsed = licenseInputSchema.safeParse(input);
  if (!parsed.success) {
    throw new InvalidInput('The license claims are invalid', {
      details: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
    });
  }
  const { issuer, organizationId, installationId, plan, seats, features, issuedAt, notBefore, expiresAt } =
    parsed.data;
  if (key.retiredAt && key.retiredAt <= issuedAt) {
    throw new InvalidInput(`Issuer key ${key.kid} was retired and signs no more licenses`);
  }
  const claims: LicenseClaims = {
    iss: issuer,
    sub: organizationId,
    installationId,
    plan,
    seats,
    features: [...new Set(features)].sort(),
    iat: toNumericDate(issuedAt),
    nbf: toNumericDate(notBefore ?? issuedAt),
    exp: toNumericDate(expiresAt),
  };
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: LICENSE_ALGORITHM, kid: key.kid, typ: LICENSE_TYPE })
    .sign(key.privateKey);
}
