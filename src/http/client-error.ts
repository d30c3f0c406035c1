/**
 * Errors express and body-parser raise for a request they cannot read, which are the client's
 * fault: an http-errors style 4xx meant for the client (`expose`: body-parser's 400 for a body that
 * does not inflate), or express's URIError for a path parameter that does not decode. Their own text
 * names internals (zlib, the raw parameter), so only the status is kept, with this sentence.
 */
export const UNDECODABLE =
  'The request could not be decoded: a malformed %-escape, or a body that does not match its Content-Encoding';

/** The 4xx status of such an error, or undefined for any other. */
export function clientErrorStatus(error: unknown): number | undefined {
  const { status, statusCode, expose } = (error ?? {}) as { status?: unknown; statusCode?: unknown; expose?: unknown };
  const code = typeof status === 'number' ? status : statusCode;
  if (typeof code !== 'number' || code < 400 || code > 499) return undefined;
  return expose === true || error instanceof URIError ? code : undefined;
}
