/**
 * The license issuer's Ed25519 key pairs. The private key leaves this module only as a PKCS#8 PEM
 * string for the caller to seal at rest (secret box, ENCRYPTION_KEY); what is published is built
 * from public members by name, so a private member (`d`) cannot reach the JWKS.
 *
 * Rotation: a new key signs from its `createdAt`; the key it replaces gets `retiredAt` and stays
 * published until the last license it may have signed expires.
 */
import { calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, importPKCS8, type JWK } from 'jose';
import { LICENSE_ALGORITHM } from './claims.js';

/** What a verifier needs of a key, and what the JWKS endpoint publishes. */
export interface PublishedKey {
  /** RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key. */
  kid: string;
  /** Public members only: `{kty: 'OKP', crv: 'Ed25519', x}`. */
  publicJwk: JWK;
  createdAt: Date;
  /** Set by rotation: the key signs nothing from then on. */
  retiredAt?: Date | undefined;
}

export interface IssuerKey extends PublishedKey {
  privateKey: CryptoKey;
}

/** A private key that cannot be used: not PKCS#8, not Ed25519, or not the key its record names. */
export class IssuerKeyInvalid extends Error {
  constructor(reason: string, options: { cause?: unknown } = {}) {
    super(`Issuer key cannot be used: ${reason}`, options);
    this.name = 'IssuerKeyInvalid';
  }
}

/** A fresh Ed25519 key pair; export the private key with `exportIssuerPrivateKey` to store it. */
export async function generateIssuerKey(createdAt: Date): Promise<IssuerKey> {
  const { privateKey } = await generateKeyPair(LICENSE_ALGORITHM, { crv: 'Ed25519', extractable: true });
  return describeKey(privateKey, { createdAt });
}

/** The private key as PKCS#8 PEM, for the caller to seal before it is stored. */
export async function exportIssuerPrivateKey(key: Pick<IssuerKey, 'privateKey'>): Promise<string> {
  return exportPKCS8(key.privateKey);
}

/**
 * Rebuilds a key from its unsealed PKCS#8 PEM. With `kid`, the stored id must match the key's
 * thumbprint, so a record whose key was swapped is refused rather than published under a false id.
 */
export async function importIssuerKey(input: {
  privateKeyPem: string;
  createdAt: Date;
  retiredAt?: Date | undefined;
  kid?: string | undefined;
}): Promise<IssuerKey> {
  let privateKey: CryptoKey;
  try {
    privateKey = await importPKCS8(input.privateKeyPem, LICENSE_ALGORITHM, { extractable: true });
  } catch (cause) {
    throw new IssuerKeyInvalid('not an Ed25519 PKCS#8 private key', { cause });
  }
  const key = await describeKey(privateKey, input);
  if (input.kid !== undefined && input.kid !== key.kid) {
    throw new IssuerKeyInvalid(`its thumbprint ${key.kid} differs from the stored kid ${input.kid}`);
  }
  // Extractable only long enough to derive the public half: the key in memory signs, nothing more.
  return { ...key, privateKey: await importPKCS8(input.privateKeyPem, LICENSE_ALGORITHM, { extractable: false }) };
}

async function describeKey(
  privateKey: CryptoKey,
  dates: { createdAt: Date; retiredAt?: Date | undefined },
): Promise<IssuerKey> {
  const { kty, crv, x } = await exportJWK(privateKey);
  if (kty !== 'OKP' || crv !== 'Ed25519' || typeof x !== 'string') throw new IssuerKeyInvalid('not an Ed25519 key');
  const publicJwk: JWK = { kty, crv, x };
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  return {
    kid,
    publicJwk,
    privateKey,
    createdAt: dates.createdAt,
    ...(dates.retiredAt ? { retiredAt: dates.retiredAt } : {}),
  };
}

/**
 * The JWKS document (RFC 7517 §5). Each entry is rebuilt from the public members by name, so
 * whatever else a key object carries never leaves.
 */
export function publicJwks(keys: readonly PublishedKey[]): { keys: JWK[] } {
  return {
    keys: keys.map(({ kid, publicJwk }) => ({
      kty: publicJwk.kty,
      crv: publicJwk.crv,
      x: publicJwk.x,
      kid,
      alg: LICENSE_ALGORITHM,
      use: 'sig',
    })),
  };
}

/**
 * The key that signs at `now`: the newest one already created and not yet retired. Undefined when
 * none is, and the caller generates one.
 */
export function currentSigningKey<K extends PublishedKey>(keys: readonly K[], now: Date): K | undefined {
  let newest: K | undefined;
  for (const key of keys) {
    if (key.createdAt > now || (key.retiredAt && key.retiredAt <= now)) continue;
    if (!newest || key.createdAt > newest.createdAt) newest = key;
  }
  return newest;
}

/**
 * The keys to list at `now`. A license lives at most `longestLicenseSeconds`, and a retired key
 * signed nothing after `retiredAt`, so every license it signed has expired once
 * `retiredAt + longestLicenseSeconds` has passed; until then it stays listed. Keys not yet retired
 * are listed, including one created ahead of its first use (verifiers can cache it before it signs).
 * Add the verifiers' clock tolerance to `longestLicenseSeconds` if it matters.
 */
export function keysToPublish<K extends PublishedKey>(
  keys: readonly K[],
  options: { now: Date; longestLicenseSeconds: number },
): K[] {
  const now = options.now.getTime();
  return keys
    .filter((key) => !key.retiredAt || now < key.retiredAt.getTime() + options.longestLicenseSeconds * 1000)
    .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
}
