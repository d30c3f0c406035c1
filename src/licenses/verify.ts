/**
 * Offline license verification for a self-hosted instance: the token, the issuer's JWKS (a file or
 * a copy fetched once) and the installation's own id are all it needs. Each rejection is named, so
 * an operator can tell a copied license (`anotherInstallation`) from a forged one (`badSignature`).
 */
import { base64url, compactVerify, decodeProtectedHeader, errors, importJWK, type JSONWebKeySet, type JWK } from 'jose';
import { LICENSE_ALGORITHM, LICENSE_TYPE, licenseClaimsSchema, toNumericDate, type LicenseClaims } from './claims.js';

export type LicenseRejection =
  /** Not a compact JWS at all, or a header that cannot be read. */
  | 'malformed'
  /** An `alg` other than EdDSA (`none`, HS256 keyed with the public key, …), or a key that is not Ed25519. */
  | 'wrongAlgorithm'
  /** No `kid`, or a `kid` the JWKS does not list (a retired key dropped, or another issuer). */
  | 'unknownKey'
  /** The signature does not match: header, payload or signature altered. */
  | 'badSignature'
  /** Validly signed, but not a license: wrong `typ`, or claims missing or ill-typed. */
  | 'invalidClaims'
  | 'anotherIssuer'
  | 'anotherOrganization'
  | 'anotherInstallation'
  | 'notYetValid'
  | 'expired';

export type LicenseVerification = { valid: true; license: LicenseClaims } | { valid: false; reason: LicenseRejection };

export interface VerifyLicenseOptions {
  /** The issuer's public keys, e.g. from `loadJwks`. */
  jwks: JSONWebKeySet;
  /** This installation's id: a license made for another one is refused. */
  installationId: string;
  /** When given, `sub` must equal it. */
  organizationId?: string | undefined;
  /** When given, `iss` must equal it (trailing slashes aside). */
  issuer?: string | undefined;
  now?: Date | undefined;
  /** Allowed clock skew for `nbf` and `exp`; 60 s by default. */
  clockToleranceSeconds?: number | undefined;
}

const DEFAULT_CLOCK_TOLERANCE_SECONDS = 60;
/** A license is a few hundred bytes; anything far larger is not one. */
const MAX_TOKEN_LENGTH = 16_384;
const ED25519_SIGNATURE_BYTES = 64;
const COMPACT_JWS = /^[\w-]+\.[\w-]+\.[\w-]*$/;

/**
 * Verifies a license token. The checks run in this order, and the first failure is the reason:
 * shape, algorithm, key, signature, type and claims, issuer, organization, installation, validity
 * window. Only the signature check is delegated to jose, pinned to EdDSA.
 */
export async function verifyLicense(token: string, options: VerifyLicenseOptions): Promise<LicenseVerification> {
  const compact = token.trim();
  if (compact.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(compact)) return reject('malformed');

  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(compact);
  } catch {
    return reject('malformed');
  }
  // Decided from the header before any key is touched: `none` and HMAC keyed with the public key
  // (the RS/HS confusion, RFC 8725 §2.1) never reach a verifier.
  if (header.alg !== LICENSE_ALGORITHM) return reject('wrongAlgorithm');
  if (typeof header.kid !== 'string' || header.kid === '') return reject('unknownKey');

  const candidates = options.jwks.keys.filter((jwk) => jwk.kid === header.kid);
  if (candidates.length !== 1) return reject('unknownKey');
  const jwk = candidates[0]!;
  if (
    jwk.kty !== 'OKP' ||
    jwk.crv !== 'Ed25519' ||
    typeof jwk.x !== 'string' ||
    (jwk.alg !== undefined && jwk.alg !== LICENSE_ALGORITHM) ||
    (jwk.use !== undefined && jwk.use !== 'sig')
  ) {
    return reject('wrongAlgorithm');
  }
  let key: Awaited<ReturnType<typeof importJWK>>;
  try {
    // Public members only, whatever else the JWKS entry holds.
    key = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: jwk.x } satisfies JWK, LICENSE_ALGORITHM);
  } catch {
    return reject('unknownKey');
  }

  // An Ed25519 signature is 64 bytes (RFC 8032 §5.1.6); a cut or padded one is an altered one.
  if (signatureLength(compact) !== ED25519_SIGNATURE_BYTES) return reject('badSignature');
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(compact, key, { algorithms: [LICENSE_ALGORITHM] }));
  } catch (error) {
    if (error instanceof errors.JOSEAlgNotAllowed) return reject('wrongAlgorithm');
    if (error instanceof errors.JWSSignatureVerificationFailed) return reject('badSignature');
    // JWSInvalid (e.g. a signature that is not base64url) and JOSENotSupported (unknown `crit`).
    return reject('malformed');
  }

  if (header.typ !== LICENSE_TYPE) return reject('invalidClaims');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return reject('invalidClaims');
  }
  const parsed = licenseClaimsSchema.safeParse(json);
  if (!parsed.success) return reject('invalidClaims');
  const license = parsed.data;

  if (options.issuer !== undefined && trimSlashes(license.iss) !== trimSlashes(options.issuer)) {
    return reject('anotherIssuer');
  }
  if (options.organizationId !== undefined && license.sub !== options.organizationId) {
    return reject('anotherOrganization');
  }
  if (license.installationId !== options.installationId) return reject('anotherInstallation');

  const now = toNumericDate(options.now ?? new Date());
  const tolerance = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  if (license.nbf > now + tolerance) return reject('notYetValid');
  // RFC 7519 §4.1.4: the current time must be before `exp`.
  if (now >= license.exp + tolerance) return reject('expired');

  return { valid: true, license };
}

function signatureLength(compact: string): number {
  try {
    return base64url.decode(compact.slice(compact.lastIndexOf('.') + 1)).length;
  } catch {
    return -1;
  }
}

const reject = (reason: LicenseRejection): LicenseVerification => ({ valid: false, reason });
const trimSlashes = (url: string) => url.replace(/\/+$/, '');

export interface LicenseUsage {
  /** Seats the installation occupies now. */
  seatsInUse?: number | undefined;
  /** Feature flags the installation has turned on. */
  featuresUsed?: readonly string[] | undefined;
}

/**
 * Whether a (verified) license still covers a usage: seats in use at most the licensed seats, and
 * every feature used licensed. Validity in time is `verifyLicense`'s concern, not this one's.
 */
export function coversUsage(
  license: Pick<LicenseClaims, 'seats' | 'features'>,
  usage: LicenseUsage,
): { covered: boolean; problems: string[] } {
  const problems: string[] = [];
  const { seatsInUse } = usage;
  if (seatsInUse !== undefined) {
    if (!Number.isInteger(seatsInUse) || seatsInUse < 0) {
      throw new RangeError(`seatsInUse must be a whole number of seats, not ${seatsInUse}`);
    }
    if (seatsInUse > license.seats) problems.push(`seats: ${seatsInUse} in use, ${license.seats} licensed`);
  }
  const licensed = new Set(license.features);
  for (const feature of new Set(usage.featuresUsed ?? [])) {
    if (!licensed.has(feature)) problems.push(`feature not licensed: ${feature}`);
  }
  return { covered: problems.length === 0, problems };
}
