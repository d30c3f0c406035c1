/**
 * A route of /api/v1 as data: its method, path, who may call it, the zod schemas of its input and
 * answer, and the handler. The same table serves express and the OpenAPI document, so they never drift.
 */
import type { Request } from 'express';
import type { z } from 'zod';
import type { Engine, Principal, SsoConfigInput } from '../membership/index.js';
import type { SsoConfigBody } from '../sso/settings.js';
import type { DirectorySync } from '../sync/runner.js';

/** What the API needs of the SSO adapter: resolving a configuration body, and forgetting cached protocol objects. */
export interface SsoAdmin {
  resolveConfig(body: SsoConfigBody): Promise<SsoConfigInput>;
  evict(organizationId: string): void;
}

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface HandlerContext<B, Q> {
  engine: Engine;
  /** Starts queued directory sync runs in-process and tests a configuration (it alone unseals the bind password). */
  directory: Pick<DirectorySync, 'kick' | 'test'>;
  sso: SsoAdmin;
  /** Present on every route whose `auth` is not `none`; optional on `optional` routes. */
  principal: Principal | undefined;
  params: Record<string, string>;
  body: B;
  query: Q;
  req: Request;
}

export interface Route<B = unknown, Q = unknown> {
  method: Method;
  path: string;
  /** The OpenAPI operationId: a verb phrase unique in the table (`inviteMembers`); generated clients name their methods by it. */
  operationId: string;
  summary: string;
  tag: string;
  /** `bearer`: a token is required; `optional`: used when present; `none`: ignored. */
  auth: 'bearer' | 'optional' | 'none';
  body?: z.ZodType<B>;
  query?: z.ZodType<Q>;
  /** What a success answers, for the OpenAPI document (not checked at run time); none on 204 routes. */
  response?: z.ZodType;
  /** Success status; 204 routes answer no body. */
  status?: 200 | 201 | 202 | 204;
  handle(ctx: HandlerContext<B, Q>): Promise<unknown>;
}

/** Keeps the body and query types of each route while collecting them in one array. */
export const route = <B = undefined, Q = undefined>(definition: Route<B, Q>): Route =>
  definition as unknown as Route;

/** The principal of a bearer route (the auth gate ran before the handler). */
export function principalOf(ctx: { principal: Principal | undefined }): Principal {
  if (!ctx.principal) throw new Error('bearer route reached without a principal');
  return ctx.principal;
}

/**
 * The methods each path of the table answers, as express matches paths (a `:param` is one segment,
 * case-insensitive, an optional trailing slash): `allowedMethods(routes)(path)` lists them for the
 * `Allow` header of a 405 (RFC 9110 §15.5.6), HEAD wherever GET is; undefined for an unknown path.
 */
export function allowedMethods(routes: Pick<Route, 'method' | 'path'>[]): (path: string) => string[] | undefined {
  const patterns = routes.map((r) => ({
    method: r.method.toUpperCase(),
    pattern: new RegExp(`^${r.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:\w+/g, '[^/]+')}/?$`, 'i'),
  }));
  return (path) => {
    const methods = new Set(patterns.filter((p) => p.pattern.test(path)).map((p) => p.method));
    if (methods.size === 0) return undefined;
    if (methods.has('GET')) methods.add('HEAD');
    return [...methods].sort();
  };
}
