/**
 * secret-box: AES-256-GCM under a key derived from ENCRYPTION_KEY (HKDF-SHA256), sealed values
 * `v1.<nonce>.<ciphertext>.<tag>` in base64url.
 */
import { createDecipheriv, hkdfSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isSealed, openSecret, sealSecret, SecretUnreadable } from '../../src/membership/secret-box.js';

const KEY = 'test-encryption-key-0123456789abcdef0123456789';
const OTHER_KEY = 'another-encryption-key-0123456789abcdef01234567';

/** Replaces the part `index` (1 nonce, 2 ciphertext, 3 tag) of a sealed value with `edit(part)`. */
const alter = (sealed: string, index: number, edit: (part: Buffer) => Buffer) =>
  sealed
    .split('.')
    .map((part, i) => (i === index ? edit(Buffer.from(part, 'base64url')).toString('base64url') : part))
    .join('.');

const flipFirstByte = (part: Buffer) => {
  const copy = Buffer.from(part);
  copy[0] = copy[0]! ^ 0x01;
  return copy;
};

describe('secret box', () => {
  it('opens what it sealed, for any text, the empty one included', () => {
    for (const text of ['hunter2', '', 'Ünïcødé ✓ — http://x.test/accept?token=inv_abc', 'x'.repeat(10_000)]) {
      expect(openSecret(KEY, sealSecret(KEY, text))).toBe(text);
      expect(openSecret(KEY, sealSecret(KEY, text, { context: 'outbox:1' }), { context: 'outbox:1' })).toBe(text);
    }
  });

  it('writes v1.<96-bit nonce>.<ciphertext>.<128-bit tag> in base64url, without the plaintext', () => {
    const sealed = sealSecret(KEY, 'inv_secret-token-value');
    expect(sealed).toMatch(/^v1\.[\w-]{16}\.[\w-]+\.[\w-]{22}$/);
    const [, nonce, ciphertext, tag] = sealed.split('.');
    expect(Buffer.from(nonce!, 'base64url')).toHaveLength(12);
    expect(Buffer.from(ciphertext!, 'base64url')).toHaveLength('inv_secret-token-value'.length);
    expect(Buffer.from(tag!, 'base64url')).toHaveLength(16);
    expect(sealed).not.toContain('secret');
  });

  it('uses a fresh nonce for every seal, so one text never seals twice alike', () => {
    const seals = new Set(Array.from({ length: 50 }, () => sealSecret(KEY, 'same text')));
    expect(seals.size).toBe(50);
    expect(new Set([...seals].map((s) => s.split('.')[1])).size).toBe(50);
  });

  it('follows the documented format: HKDF-SHA256 key, AES-256-GCM, "v1\\0<context>" as associated data', () => {
    const sealed = sealSecret(KEY, 'read me elsewhere', { context: 'directory:org-1' });
    const [, nonce, ciphertext, tag] = sealed.split('.').map((p) => Buffer.from(p, 'base64url'));
    const key = Buffer.from(hkdfSync('sha256', KEY, Buffer.alloc(0), 'portico secret-box v1 aes-256-gcm', 32));
    const decipher = createDecipheriv('aes-256-gcm', key, nonce!);
    decipher.setAAD(Buffer.from('v1\0directory:org-1'));
    decipher.setAuthTag(tag!);
    expect(Buffer.concat([decipher.update(ciphertext!), decipher.final()]).toString()).toBe('read me elsewhere');
  });

  it('refuses another key, another context and any altered part with SecretUnreadable', () => {
    const sealed = sealSecret(KEY, 'bind-password', { context: 'directory:org-1' });
    const attempts: Array<[string, () => string]> = [
      ['another key', () => openSecret(OTHER_KEY, sealed, { context: 'directory:org-1' })],
      ['another context', () => openSecret(KEY, sealed, { context: 'directory:org-2' })],
      ['no context', () => openSecret(KEY, sealed)],
      ['altered nonce', () => openSecret(KEY, alter(sealed, 1, flipFirstByte), { context: 'directory:org-1' })],
      ['altered ciphertext', () => openSecret(KEY, alter(sealed, 2, flipFirstByte), { context: 'directory:org-1' })],
      ['altered tag', () => openSecret(KEY, alter(sealed, 3, flipFirstByte), { context: 'directory:org-1' })],
      ['truncated ciphertext', () => openSecret(KEY, alter(sealed, 2, (p) => p.subarray(1)), { context: 'directory:org-1' })],
      ['another version', () => openSecret(KEY, sealed.replace(/^v1/, 'v2'), { context: 'directory:org-1' })],
      ['plain text', () => openSecret(KEY, 'bind-password')],
    ];
    for (const [what, attempt] of attempts) expect(attempt, what).toThrow(SecretUnreadable);
  });

  it('refuses a key shorter than ENCRYPTION_KEY allows, saying how to make one', () => {
    expect(() => sealSecret('short', 'x')).toThrow(/openssl rand/);
    expect(() => sealSecret('', 'x')).toThrow(TypeError);
  });

  it('tells a sealed value from plain text', () => {
    expect(isSealed(sealSecret(KEY, 'x'))).toBe(true);
    expect(isSealed(sealSecret(KEY, ''))).toBe(true);
    expect(isSealed('You have been invited.\n\nAccept within 120 hours:\nhttp://portico.test/accept?token=(sent)\n')).toBe(false);
    expect(isSealed('v1.not.sealed')).toBe(false);
  });
});
