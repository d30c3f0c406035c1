/**
 * Reads the issuer's JWKS for offline verification: from a file the operator copied, or once from
 * the issuer's `GET /api/v1/license-keys` over https.
 */
import { readFile } from 'node:fs/promises';
import type { JSONWebKeySet } from 'jose';
import { z } from 'zod';

/** The JWKS could not be read, fetched or understood; the message says which. */
export class JwksUnavailable extends Error {
  constructor(source: string, reason: string, options: { cause?: unknown } = {}) {
    super(`JWKS from ${source} is unavailable: ${reason}`, options);
    this.name = 'JwksUnavailable';
  }
}

export interface LoadJwksOptions {
  /** 10 s by default. */
  timeoutMs?: number | undefined;
  fetch?: typeof fetch | undefined;
  readFile?: ((path: string) => Promise<string>) | undefined;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** A JWKS of a few keys is well under 1 KiB each. */
const MAX_BYTES = 256 * 1024;
/** Private or symmetric members (RFC 7518 §6): a verifier needs none, and holding one is a leak. */
const SECRET_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

const jwksSchema = z.object({
  keys: z.array(z.looseObject({ kty: z.string().min(1), kid: z.string().min(1).optional() })).max(100),
});

/**
 * Loads a JWKS from `source`: an `https:` URL (plain `http:` only to a loopback host), or else a
 * file path. Refuses a document that holds private key material.
 */
export async function loadJwks(source: string, options: LoadJwksOptions = {}): Promise<JSONWebKeySet> {
  const text = /^https?:\/\//i.test(source) ? await download(source, options) : await readLocal(source, options);
  if (text.length > MAX_BYTES) throw new JwksUnavailable(source, `larger than ${MAX_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new JwksUnavailable(source, 'not JSON', { cause });
  }
  const parsed = jwksSchema.safeParse(json);
  if (!parsed.success) throw new JwksUnavailable(source, 'not a JWKS ({"keys": [...]})');
  for (const key of parsed.data.keys) {
    const secret = SECRET_MEMBERS.find((member) => member in key);
    if (secret) {
      throw new JwksUnavailable(source, `key ${key.kid ?? '(no kid)'} holds private member "${secret}"; publish public keys only`);
    }
  }
  return parsed.data as JSONWebKeySet;
}

async function download(source: string, options: LoadJwksOptions): Promise<string> {
  let url: URL;
  try {
    url = new URL(source);
  } catch (cause) {
    throw new JwksUnavailable(source, 'not a valid URL', { cause });
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) {
    throw new JwksUnavailable(source, 'a JWKS URL must be https');
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let response: Response;
  try {
    response = await (options.fetch ?? fetch)(url, {
      headers: { accept: 'application/json' },
      // A redirect could leave https; the operator gives the final URL instead.
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (cause) {
    const timedOut = cause instanceof Error && cause.name === 'TimeoutError';
    throw new JwksUnavailable(source, timedOut ? `no answer within ${timeoutMs} ms` : 'request failed', { cause });
  }
  if (!response.ok) throw new JwksUnavailable(source, `HTTP ${response.status}`);
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > MAX_BYTES) throw new JwksUnavailable(source, `larger than ${MAX_BYTES} bytes`);
  try {
    return await response.text();
  } catch (cause) {
    throw new JwksUnavailable(source, 'the response body could not be read', { cause });
  }
}

async function readLocal(path: string, options: LoadJwksOptions): Promise<string> {
  try {
    return await (options.readFile ?? ((file: string) => readFile(file, 'utf8')))(path);
  } catch (cause) {
    throw new JwksUnavailable(path, 'the file cannot be read', { cause });
  }
}
