/**
 * Secrets that must be read back (pending mail bodies; later bind passwords and OIDC client secrets),
 * sealed with ENCRYPTION_KEY so that a dump of the database reveals none of them.
 *
 * AES-256-GCM with a key derived from ENCRYPTION_KEY by HKDF-SHA256 (RFC 5869) and a random 96-bit
 * nonce (NIST SP 800-38D §8.2.2: random nonces stay safe for far more than 2^32 seals per key).
 * A sealed value is `v1.<nonce>.<ciphertext>.<tag>`, each part base64url; the version names the
 * derivation and the cipher, so a later key rotation or cipher can be told apart from it.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const VERSION = 'v1';
/** HKDF `info`: separates this key from any other derived from ENCRYPTION_KEY. */
const KEY_LABEL = 'portico secret-box v1 aes-256-gcm';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const SEALED = /^v1\.([\w-]{16})\.([\w-]*)\.([\w-]{22})$/;

export interface SealOptions {
  /**
   * What the secret belongs to, e.g. `outbox:<mail id>` or `directory:<organization id>`. It is
   * authenticated, not stored: opening with another context fails, so a sealed value copied onto
   * another row cannot be read there.
   */
  context?: string | undefined;
}

/** A sealed value that cannot be opened: another key, another context, or altered. */
export class SecretUnreadable extends Error {
  constructor(reason: string) {
    super(`Sealed secret cannot be opened: ${reason}`);
    this.name = 'SecretUnreadable';
  }
}

/** Seals `plaintext` with `key` (ENCRYPTION_KEY); every call uses a fresh nonce. */
export function sealSecret(key: string, plaintext: string, options: SealOptions = {}): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(key), nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData(options.context));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return `${VERSION}.${nonce.toString('base64url')}.${ciphertext.toString('base64url')}.${tag.toString('base64url')}`;
}

/** Opens a value of `sealSecret` sealed with the same key and context; throws `SecretUnreadable` otherwise. */
export function openSecret(key: string, sealed: string, options: SealOptions = {}): string {
  const parts = SEALED.exec(sealed);
  if (!parts) throw new SecretUnreadable('not a sealed value');
  const [, nonce, ciphertext, tag] = parts as unknown as [string, string, string, string];
  const decipher = createDecipheriv('aes-256-gcm', deriveKey(key), Buffer.from(nonce, 'base64url'), { authTagLength: TAG_BYTES });
  decipher.setAAD(associatedData(options.context));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  try {
    return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new SecretUnreadable('sealed with another ENCRYPTION_KEY or for another context, or altered');
  }
}

/** Whether `value` has the form of a sealed value (it may still fail to open). */
export function isSealed(value: string): boolean {
  return SEALED.test(value);
}

/**
 * Derived keys by ENCRYPTION_KEY, so HKDF runs once per key rather than once per seal (a directory
 * sync seals a mail per invited user). Module-private and bounded: a process holds one key, tests
 * a few; past `DERIVED_KEYS_MAX` the oldest is forgotten. Holds nothing the process does not already.
 */
const derivedKeys = new Map<string, Buffer>();
const DERIVED_KEYS_MAX = 4;

function deriveKey(key: string): Buffer {
  // config.ts enforces ≥ 32 characters; this guards callers that bypass it (an empty key seals nothing).
  if (key.length < 32) throw new TypeError('ENCRYPTION_KEY must be at least 32 characters; make one with `openssl rand -base64 32`');
  let derived = derivedKeys.get(key);
  if (derived === undefined) {
    derived = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), KEY_LABEL, 32));
    if (derivedKeys.size >= DERIVED_KEYS_MAX) derivedKeys.delete(derivedKeys.keys().next().value!);
    derivedKeys.set(key, derived);
  }
  // createCipheriv/createDecipheriv copy the key; callers never see or alter the cached buffer.
  return derived;
}

/** The version is authenticated with the context, so a value cannot be replayed under another format. */
const associatedData = (context: string | undefined): Buffer => Buffer.from(`${VERSION}\0${context ?? ''}`, 'utf8');
