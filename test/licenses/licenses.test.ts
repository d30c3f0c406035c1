import { createHmac } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64url, calculateJwkThumbprint, CompactSign, generateKeyPair, exportJWK, type JSONWebKeySet } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  coversUsage,
  currentSigningKey,
  exportIssuerPrivateKey,
  generateIssuerKey,
  importIssuerKey,
  IssuerKeyInvalid,
  JwksUnavailable,
  keysToPublish,
  loadJwks,
  publicJwks,
  runLicenseVerify,
  signLicense,
  verifyLicense,
  type IssuerKey,
  type LicenseInput,
} from '../../src/licenses/index.js';

const ISSUER = 'https://portico.msp.example';
const ORG = '0b8f3c1e-7d2a-4c55-9e61-3f0a2b4c6d8e';
const INSTALLATION = 'inst-acme-01';
const T0 = new Date('2026-01-01T00:00:00Z');
const DAY = 86_400_000;
const at = (ms: number) => new Date(T0.getTime() + ms);

const input = (overrides: Partial<LicenseInput> = {}): LicenseInput => ({
  issuer: ISSUER,
  organizationId: ORG,
  installationId: INSTALLATION,
  plan: 'enterprise',
  seats: 25,
  features: ['sso', 'scim', 'directorySync'],
  issuedAt: T0,
  expiresAt: at(365 * DAY),
  ...overrides,
});

let key: IssuerKey;
let other: IssuerKey;
let jwks: JSONWebKeySet;
let token: string;

beforeAll(async () => {
  key = await generateIssuerKey(T0);
  other = await generateIssuerKey(T0);
  jwks = publicJwks([key, other]);
  token = await signLicense(key, input());
});

const verify = (candidate: string, options: Partial<Parameters<typeof verifyLicense>[1]> = {}) =>
  verifyLicense(candidate, { jwks, installationId: INSTALLATION, organizationId: ORG, issuer: ISSUER, now: at(DAY), ...options });

const parts = (compact: string) => compact.split('.') as [string, string, string];
const encodeJson = (value: unknown) => base64url.encode(JSON.stringify(value));
const decodeJson = (segment: string) => JSON.parse(new TextDecoder().decode(base64url.decode(segment)));

/** A validly signed token with any header and payload, for claims the issuer would never write. */
async function signRaw(payload: unknown, header: Record<string, unknown> = {}) {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'portico-license+jwt', ...header })
    .sign(key.privateKey);
}

describe('a license', () => {
  it('verifies, carrying the shape design.md gives', async () => {
    const result = await verify(token);
    expect(result).toEqual({
      valid: true,
      license: {
        iss: ISSUER,
        sub: ORG,
        installationId: INSTALLATION,
        plan: 'enterprise',
        seats: 25,
        features: ['directorySync', 'scim', 'sso'],
        iat: T0.getTime() / 1000,
        nbf: T0.getTime() / 1000,
        exp: at(365 * DAY).getTime() / 1000,
      },
    });
    const [header, payload] = parts(token);
    expect(decodeJson(header)).toEqual({ alg: 'EdDSA', kid: key.kid, typ: 'portico-license+jwt' });
    expect(Object.keys(decodeJson(payload))).toEqual(['iss', 'sub', 'installationId', 'plan', 'seats', 'features', 'iat', 'nbf', 'exp']);
  });

  it('verifies without the optional organization and issuer checks', async () => {
    expect((await verify(token, { organizationId: undefined, issuer: undefined })).valid).toBe(true);
  });

  it('is not signed from invalid input, and every bad path is listed', async () => {
    await expect(
      signLicense(key, input({ seats: -1, installationId: 'has space', expiresAt: T0, issuer: 'not a url' })),
    ).rejects.toMatchObject({
      code: 'input.invalid',
      details: expect.arrayContaining([
        expect.objectContaining({ path: 'seats' }),
        expect.objectContaining({ path: 'installationId' }),
        expect.objectContaining({ path: 'issuer' }),
      ]),
    });
    await expect(signLicense(key, { ...input(), extra: true } as LicenseInput)).rejects.toMatchObject({ code: 'input.invalid' });
  });
});

describe('tampering is rejected with its reason', () => {
  it('a claim edited in the payload breaks the signature', async () => {
    const [header, payload, signature] = parts(token);
    const edited = encodeJson({ ...decodeJson(payload), seats: 2500 });
    expect(await verify(`${header}.${edited}.${signature}`)).toEqual({ valid: false, reason: 'badSignature' });
  });

  it('one payload character changed breaks the signature', async () => {
    const [header, payload, signature] = parts(token);
    const i = Math.floor(payload.length / 2);
    const flipped = payload.slice(0, i) + (payload[i] === 'A' ? 'B' : 'A') + payload.slice(i + 1);
    expect(await verify(`${header}.${flipped}.${signature}`)).toEqual({ valid: false, reason: 'badSignature' });
  });

  it('a header edited (typ) breaks the signature', async () => {
    const [header, payload, signature] = parts(token);
    const edited = encodeJson({ ...decodeJson(header), typ: 'JWT' });
    expect(await verify(`${edited}.${payload}.${signature}`)).toEqual({ valid: false, reason: 'badSignature' });
  });

  it('alg "none" with the signature dropped is refused before any key is used', async () => {
    const [header, payload] = parts(token);
    const none = encodeJson({ ...decodeJson(header), alg: 'none' });
    expect(await verify(`${none}.${payload}.`)).toEqual({ valid: false, reason: 'wrongAlgorithm' });
  });

  it('HS256 keyed with the public key (key confusion) is refused', async () => {
    const [header, payload] = parts(token);
    const hs = encodeJson({ ...decodeJson(header), alg: 'HS256' });
    const publicKeyBytes = [base64url.decode(key.publicJwk.x!), Buffer.from(JSON.stringify(jwks.keys[0]))];
    for (const secret of publicKeyBytes) {
      const mac = createHmac('sha256', secret).update(`${hs}.${payload}`).digest('base64url');
      expect(await verify(`${hs}.${payload}.${mac}`)).toEqual({ valid: false, reason: 'wrongAlgorithm' });
    }
  });

  it('a kid switched to another published key fails the signature; an unlisted or missing kid is an unknown key', async () => {
    const [header, payload, signature] = parts(token);
    const swapped = encodeJson({ ...decodeJson(header), kid: other.kid });
    expect(await verify(`${swapped}.${payload}.${signature}`)).toEqual({ valid: false, reason: 'badSignature' });
    const unlisted = await signRaw(decodeJson(payload), { kid: 'no-such-key' });
    expect(await verify(unlisted)).toEqual({ valid: false, reason: 'unknownKey' });
    const { kid: _kid, ...withoutKid } = decodeJson(header);
    const noKid = `${encodeJson(withoutKid)}.${payload}.${signature}`;
    expect(await verify(noKid)).toEqual({ valid: false, reason: 'unknownKey' });
  });

  it('a truncated or emptied signature is a bad signature', async () => {
    const [header, payload, signature] = parts(token);
    for (const cut of [signature.slice(0, -1), signature.slice(0, -4), signature.slice(0, 43), '']) {
      expect(await verify(`${header}.${payload}.${cut}`)).toEqual({ valid: false, reason: 'badSignature' });
    }
  });

  it('something that is not a compact JWS is malformed', async () => {
    for (const junk of ['', 'not a token', 'a.b', 'a.b.c.d', `${base64url.encode('{not json')}.e30.`, `${'A'.repeat(20_000)}.e30.`]) {
      expect(await verify(junk), junk.slice(0, 20)).toEqual({ valid: false, reason: 'malformed' });
    }
  });

  it('a JWKS entry under the kid that is not an Ed25519 key is the wrong algorithm', async () => {
    const { publicKey } = await generateKeyPair('ES256');
    const ec = { ...(await exportJWK(publicKey)), kid: key.kid };
    expect(await verify(token, { jwks: { keys: [ec] } })).toEqual({ valid: false, reason: 'wrongAlgorithm' });
  });

  it('a validly signed token with missing or ill-typed claims, or of another type, has invalid claims', async () => {
    const claims = decodeJson(parts(token)[1]);
    const { seats: _seats, ...withoutSeats } = claims;
    const bad = [
      await signRaw(withoutSeats),
      await signRaw({ ...claims, seats: '25' }),
      await signRaw({ ...claims, features: 'sso' }),
      await signRaw({ ...claims, exp: claims.nbf }),
      await signRaw(claims, { typ: 'JWT' }),
      await signRaw('a string, not claims'),
    ];
    for (const candidate of bad) expect(await verify(candidate)).toEqual({ valid: false, reason: 'invalidClaims' });
  });
});

describe('mismatches are rejected with their reason', () => {
  it('another installation, organization or issuer', async () => {
    expect(await verify(token, { installationId: 'inst-other' })).toEqual({ valid: false, reason: 'anotherInstallation' });
    expect(await verify(token, { organizationId: '11111111-1111-4111-8111-111111111111' })).toEqual({
      valid: false,
      reason: 'anotherOrganization',
    });
    expect(await verify(token, { issuer: 'https://rogue.example' })).toEqual({ valid: false, reason: 'anotherIssuer' });
    expect((await verify(token, { issuer: `${ISSUER}/` })).valid).toBe(true);
  });

  it('expired at exp, accepted just before it and within the clock tolerance after it', async () => {
    const exp = at(365 * DAY).getTime();
    const expect_ = async (now: number, tolerance: number) =>
      verify(token, { now: new Date(now), clockToleranceSeconds: tolerance });
    expect((await expect_(exp - 1000, 0)).valid).toBe(true);
    expect(await expect_(exp, 0)).toEqual({ valid: false, reason: 'expired' });
    expect((await expect_(exp + 30_000, 60)).valid).toBe(true);
    expect(await expect_(exp + 60_000, 60)).toEqual({ valid: false, reason: 'expired' });
    expect(await verify(token, { now: at(400 * DAY) })).toEqual({ valid: false, reason: 'expired' });
  });

  it('not yet valid before nbf, accepted within the clock tolerance', async () => {
    const later = await signLicense(key, input({ notBefore: at(10 * DAY) }));
    const nbf = at(10 * DAY).getTime();
    expect(await verify(later, { now: new Date(nbf - 61_000), clockToleranceSeconds: 60 })).toEqual({
      valid: false,
      reason: 'notYetValid',
    });
    expect((await verify(later, { now: new Date(nbf - 59_000), clockToleranceSeconds: 60 })).valid).toBe(true);
    expect(await verify(later, { now: new Date(nbf - 1000), clockToleranceSeconds: 0 })).toEqual({ valid: false, reason: 'notYetValid' });
  });

  it('a license for another installation is refused even though its signature is good', async () => {
    const forOther = await signLicense(key, input({ installationId: 'inst-beta-02' }));
    expect(await verify(forOther)).toEqual({ valid: false, reason: 'anotherInstallation' });
  });
});

describe('issuer keys', () => {
  it('the kid is the RFC 7638 thumbprint and the JWKS holds no private member', async () => {
    expect(key.kid).toBe(await calculateJwkThumbprint(key.publicJwk, 'sha256'));
    const leaky = { ...key, publicJwk: { ...key.publicJwk, d: 'secret' } };
    const document = publicJwks([key, leaky]);
    for (const jwk of document.keys) {
      expect(jwk).toEqual({ kty: 'OKP', crv: 'Ed25519', x: key.publicJwk.x, kid: key.kid, alg: 'EdDSA', use: 'sig' });
      expect(jwk).not.toHaveProperty('d');
    }
    expect(JSON.stringify(document)).not.toMatch(/"d"/);
  });

  it('a private key exported for sealing imports back to the same key', async () => {
    const pem = await exportIssuerPrivateKey(key);
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const back = await importIssuerKey({ privateKeyPem: pem, createdAt: T0, kid: key.kid });
    expect(back.kid).toBe(key.kid);
    expect(back.privateKey.extractable).toBe(false);
    expect((await verify(await signLicense(back, input()))).valid).toBe(true);
  });

  it('a stored key whose thumbprint differs from its kid, or that is not a key, is refused', async () => {
    const pem = await exportIssuerPrivateKey(key);
    await expect(importIssuerKey({ privateKeyPem: pem, createdAt: T0, kid: other.kid })).rejects.toBeInstanceOf(IssuerKeyInvalid);
    await expect(importIssuerKey({ privateKeyPem: 'garbage', createdAt: T0 })).rejects.toBeInstanceOf(IssuerKeyInvalid);
  });

  it('rotation: the new key signs, and licenses of the old one verify while it stays published', async () => {
    const lifetime = 365 * 86_400;
    const old = await generateIssuerKey(T0);
    const oldLicense = await signLicense(old, input({ issuedAt: at(DAY), expiresAt: at(366 * DAY) }));
    const rotatedAt = at(30 * DAY);
    const fresh = await generateIssuerKey(rotatedAt);
    const keys = [{ ...old, retiredAt: rotatedAt }, fresh];

    expect(currentSigningKey(keys, at(29 * DAY))?.kid).toBe(old.kid);
    expect(currentSigningKey(keys, rotatedAt)?.kid).toBe(fresh.kid);
    await expect(signLicense(keys[0]!, input({ issuedAt: rotatedAt, expiresAt: at(60 * DAY) }))).rejects.toMatchObject({
      code: 'input.invalid',
    });

    const newLicense = await signLicense(fresh, input({ issuedAt: rotatedAt, expiresAt: at(395 * DAY) }));
    const midway = at(200 * DAY);
    const published = publicJwks(keysToPublish(keys, { now: midway, longestLicenseSeconds: lifetime }));
    expect(published.keys.map((k) => k.kid)).toEqual([fresh.kid, old.kid]);
    expect((await verify(oldLicense, { jwks: published, now: midway })).valid).toBe(true);
    expect((await verify(newLicense, { jwks: published, now: midway })).valid).toBe(true);

    // Every license the old key signed has expired by retiredAt + lifetime: it is dropped then.
    const after = at(30 * DAY + lifetime * 1000);
    const later = publicJwks(keysToPublish(keys, { now: after, longestLicenseSeconds: lifetime }));
    expect(later.keys.map((k) => k.kid)).toEqual([fresh.kid]);
    expect(await verify(oldLicense, { jwks: later, now: at(365 * DAY) })).toEqual({ valid: false, reason: 'unknownKey' });
    expect((await verify(newLicense, { jwks: later, now: at(365 * DAY) })).valid).toBe(true);
  });

  it('no key signs before it is created or after it is retired', () => {
    const keys = [{ ...key, createdAt: at(DAY), retiredAt: at(2 * DAY) }];
    expect(currentSigningKey(keys, T0)).toBeUndefined();
    expect(currentSigningKey(keys, at(DAY))?.kid).toBe(key.kid);
    expect(currentSigningKey(keys, at(2 * DAY))).toBeUndefined();
  });
});

describe('coverage of a usage', () => {
  const license = { seats: 10, features: ['sso', 'scim'] };

  it('seats in use equal to the licensed seats are covered; one more is not', () => {
    expect(coversUsage(license, { seatsInUse: 10 })).toEqual({ covered: true, problems: [] });
    expect(coversUsage(license, { seatsInUse: 11 })).toEqual({ covered: false, problems: ['seats: 11 in use, 10 licensed'] });
  });

  it('a feature used but not licensed is named; licensed ones and no usage are covered', () => {
    expect(coversUsage(license, { featuresUsed: ['sso', 'directorySync', 'directorySync'] })).toEqual({
      covered: false,
      problems: ['feature not licensed: directorySync'],
    });
    expect(coversUsage(license, { featuresUsed: ['scim', 'sso'] }).covered).toBe(true);
    expect(coversUsage(license, {}).covered).toBe(true);
    expect(coversUsage({ seats: 0, features: [] }, { seatsInUse: 0, featuresUsed: [] }).covered).toBe(true);
  });

  it('every problem is listed at once, and a nonsense seat count is a programming error', () => {
    expect(coversUsage(license, { seatsInUse: 12, featuresUsed: ['audit'] }).problems).toHaveLength(2);
    expect(() => coversUsage(license, { seatsInUse: -1 })).toThrow(RangeError);
    expect(() => coversUsage(license, { seatsInUse: 1.5 })).toThrow(RangeError);
  });
});

describe('loading a JWKS', () => {
  const fetchReturning =
    (body: string, status = 200): typeof fetch =>
    async () =>
      new Response(body, { status });

  it('reads a file path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'portico-jwks-'));
    const path = join(dir, 'jwks.json');
    await writeFile(path, JSON.stringify(jwks));
    expect(await loadJwks(path)).toEqual(jwks);
    await expect(loadJwks(join(dir, 'missing.json'))).rejects.toBeInstanceOf(JwksUnavailable);
  });

  it('fetches an https URL, and refuses plain http to anything but loopback', async () => {
    expect(await loadJwks('https://portico.msp.example/api/v1/license-keys', { fetch: fetchReturning(JSON.stringify(jwks)) })).toEqual(jwks);
    await expect(loadJwks('http://portico.msp.example/api/v1/license-keys', { fetch: fetchReturning('{}') })).rejects.toThrow(/https/);
    expect(await loadJwks('http://127.0.0.1:3000/api/v1/license-keys', { fetch: fetchReturning(JSON.stringify(jwks)) })).toEqual(jwks);
    await expect(loadJwks('https://x.example/k', { fetch: fetchReturning('nope', 404) })).rejects.toThrow(/HTTP 404/);
    await expect(loadJwks('https://', { fetch: fetchReturning('{}') })).rejects.toBeInstanceOf(JwksUnavailable);
  });

  it('gives up after the timeout', async () => {
    const hanging: typeof fetch = (_url, init) =>
      new Promise((_resolve, rejectFetch) => init?.signal?.addEventListener('abort', () => rejectFetch(init.signal?.reason)));
    await expect(loadJwks('https://slow.example/k', { fetch: hanging, timeoutMs: 5 })).rejects.toThrow(/no answer within 5 ms/);
  });

  it('refuses a document that is not a JWKS or holds a private member', async () => {
    const load = (body: unknown) => loadJwks('https://x.example/k', { fetch: fetchReturning(JSON.stringify(body)) });
    await expect(load({ nope: [] })).rejects.toThrow(/not a JWKS/);
    await expect(load({ keys: [{ ...jwks.keys[0], d: 'secret' }] })).rejects.toThrow(/private member "d"/);
    await expect(load({ keys: [{ kty: 'oct', kid: 'h', k: 'c2VjcmV0' }] })).rejects.toThrow(/private member "k"/);
  });
});

describe('portico license verify', () => {
  const run = async (argv: string[], files: Record<string, string>) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runLicenseVerify(argv, {
      stdout: (line) => out.push(line),
      stderr: (line) => err.push(line),
      readFile: async (path) => {
        const text = files[path];
        if (text === undefined) throw new Error(`ENOENT: ${path}`);
        return text;
      },
      now: () => at(DAY),
    });
    return { code, out, err };
  };
  const files = () => ({ 'license.jwt': `${token}\n`, 'jwks.json': JSON.stringify(jwks) });
  const base = ['license.jwt', '--jwks', 'jwks.json', '--installation', INSTALLATION];

  it('prints valid and exits 0', async () => {
    const { code, out } = await run(base, files());
    expect(code).toBe(0);
    expect(out[0]).toBe('valid');
    expect(out).toContain('  seats:        25');
  });

  it('accepts the download body as the license file', async () => {
    const body = JSON.stringify({ license: token, expiresAt: at(365 * DAY).toISOString() });
    expect((await run(base, { ...files(), 'license.jwt': body })).code).toBe(0);
  });

  it('prints invalid with the reason and exits 1', async () => {
    const { code, out } = await run([...base.slice(0, 4), 'inst-other'], files());
    expect({ code, out }).toEqual({ code: 1, out: ['invalid: anotherInstallation'] });
    const org = await run([...base, '--organization', 'another-org'], files());
    expect(org.out).toEqual(['invalid: anotherOrganization']);
  });

  it('reports coverage when usage is given: covered exits 0, not covered exits 1', async () => {
    const covered = await run([...base, '--seats-in-use', '25', '--features', 'sso,scim'], files());
    expect(covered.code).toBe(0);
    expect(covered.out.at(-1)).toBe('covered');
    const over = await run([...base, '--seats-in-use', '26', '--features', 'sso,audit'], files());
    expect(over.code).toBe(1);
    expect(over.out.at(-1)).toBe('not covered: seats: 26 in use, 25 licensed; feature not licensed: audit');
  });

  it('exits 2 on a usage error or when no verdict can be reached', async () => {
    for (const argv of [
      ['license.jwt', '--installation', INSTALLATION],
      ['license.jwt', '--jwks', 'jwks.json'],
      [...base, '--bogus'],
      [...base, '--seats-in-use', 'many'],
      [...base, 'second.jwt'],
      ['missing.jwt', ...base.slice(1)],
      ['license.jwt', '--jwks', 'missing.json', '--installation', INSTALLATION],
    ]) {
      const { code, err } = await run(argv, files());
      expect(code, argv.join(' ')).toBe(2);
      expect(err[0]).toMatch(/^error: /);
    }
  });
});
