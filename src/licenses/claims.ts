/**
 * The license token's shape, shared by the issuer and by offline verifiers (design.md, "Licenses for
 * self-hosted clients"): a compact JWS, `alg: EdDSA`, `kid` and `typ` in its protected header, and
 * the payload `{iss, sub, installationId, plan, seats, features, iat, nbf, exp}`.
 */
import { z } from 'zod';

/** The only signature algorithm issued or accepted (RFC 8037 §3.1, Ed25519). */
export const LICENSE_ALGORITHM = 'EdDSA';
/** Explicit typing (RFC 8725 §3.11): a token of another kind signed by the same key is not a license. */
export const LICENSE_TYPE = 'portico-license+jwt';

/**
 * An installation id as the client's instance reports it: printable ASCII without spaces, so it
 * survives a query string, a shell argument and a log line unchanged.
 */
export const installationIdSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');

/** NumericDate (RFC 7519 §2): whole seconds since the epoch. */
const numericDate = z.number().int().nonnegative();

/**
 * The payload as verifiers read it. Unknown claims are dropped rather than refused, so a newer
 * issuer can add one without breaking installed verifiers.
 */
export const licenseClaimsSchema = z
  .object({
    iss: z.string().min(1),
    sub: z.string().min(1),
    installationId: installationIdSchema,
    plan: z.string().min(1),
    seats: z.number().int().nonnegative(),
    features: z.array(z.string().min(1)),
    iat: numericDate,
    nbf: numericDate,
    exp: numericDate,
  })
  .refine((claims) => claims.exp > claims.nbf, { message: 'exp must be after nbf', path: ['exp'] });

export type LicenseClaims = z.infer<typeof licenseClaimsSchema>;

export const toNumericDate = (date: Date): number => Math.floor(date.getTime() / 1000);
