/**
 * A cap on how deeply a JSON request body nests, checked right after express's JSON parser for
 * /api/v1 and for SCIM. V8's JSON.parse is iterative (measured on Node 20: a 1,000,000-deep array
 * parses in 0.7 s without error), but what walks the parsed value afterwards recurses: scimmy's
 * coercion and our normalisers answered 500 to a 3,000-deep SCIM body, and JSON.stringify
 * overflows at 5,000 levels. The measure below is a loop over an explicit stack.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';

/** Far beyond any body we take: the deepest SCIM body an IdP sends nests 5 levels. */
export const MAX_JSON_DEPTH = 32;

/** Whether `value` nests arrays and objects more than `max` levels deep; linear in its size. */
export function exceedsJsonDepth(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  for (let entry = stack.pop(); entry; entry = stack.pop()) {
    const [node, depth] = entry;
    if (typeof node !== 'object' || node === null) continue;
    if (depth > max) return true;
    for (const child of Object.values(node)) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * Middleware for after a JSON body parser: a body deeper than `max` goes to `refuse`, which
 * answers in the caller's protocol; any other request goes on.
 */
export function limitJsonDepth(refuse: RequestHandler, max = MAX_JSON_DEPTH): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (exceedsJsonDepth(req.body, max)) return void refuse(req, res, next);
    next();
  };
}
