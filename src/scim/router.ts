/**
 * `/scim/v2/:organizationId/…`: our own express routes over scimmy's schemas, filter parser,
 * PatchOp and error messages. scimmy-routers is not used: it sets a process-wide basepath per
 * request (another tenant's meta.location under concurrency), mutates `req.query` (ignored on
 * Express 5), and re-slices pages the database already paged. Filtering and paging happen in SQL.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { clientErrorStatus, UNDECODABLE } from '../http/client-error.js';
import { limitJsonDepth, MAX_JSON_DEPTH } from '../http/json-depth.js';
import type { Engine, OrganizationHandle } from '../membership/index.js';
import { renderScimError, ScimError, type RenderedScimError } from './errors.js';
import { MAX_FILTER_LENGTH, parseGroupFilter, parseUserFilter } from './filter.js';
import {
  createGroup,
  createUser,
  loadGroup,
  loadUser,
  patchGroup,
  patchUser,
  renderGroup,
  renderUser,
  replaceGroup,
  replaceUser,
} from './resources.js';
import { CORE_GROUP, CORE_USER, LIST_RESPONSE, MAX_RESULTS, resourceTypes, schemaDocuments, serviceProviderConfig } from './schemas.js';

type Json = Record<string, unknown>;

export interface ScimRouterOptions {
  engine: Engine;
  publicUrl: string;
  bodyLimit: string;
}

interface Locals {
  org: OrganizationHandle;
  baseUrl: string;
}

const SCIM_JSON = 'application/scim+json; charset=utf-8';
const MAX_START_INDEX = 2 ** 31;

export function createScimRouter(options: ScimRouterOptions) {
  const router = express.Router({ mergeParams: true });
  // The key first: a caller without one learns nothing, not even whether its body parses.
  router.use(authenticate(options));
  router.use(
    express.json({ limit: options.bodyLimit, type: ['application/scim+json', 'application/json'] }),
    limitJsonDepth((_req, _res, next) =>
      next(new ScimError(400, 'invalidSyntax', `The body nests deeper than ${MAX_JSON_DEPTH} levels`)),
    ),
  );

  const locals = (res: Response) => res.locals as Locals;
  /** Every SCIM write is one transaction: a PATCH whose last operation fails changes nothing (RFC 7644 §3.5.2). */
  const atomically = <T>(l: Locals, work: (org: OrganizationHandle) => Promise<T>) => options.engine.atomically(l.org, work);
  const send = (res: Response, status: number, body?: unknown) => {
    if (body === undefined) return void res.status(status).end();
    sendJson(res, status, body);
  };
  const route =
    (work: (req: Request, res: Response, l: Locals) => Promise<void>) =>
    (req: Request, res: Response, next: NextFunction) =>
      work(req, res, locals(res)).catch(next);
  const requireBody = (req: Request) => {
    if (!req.is(['application/scim+json', 'application/json'])) {
      throw new ScimError(415, undefined, 'Send application/scim+json');
    }
  };

  router.get(
    '/ServiceProviderConfig',
    route(async (_req, res, l) => send(res, 200, serviceProviderConfig(l.baseUrl))),
  );
  // Discovery lists and their members by id (RFC 7644 §4).
  const discovery = [
    ['/ResourceTypes', resourceTypes, 'Resource type'],
    ['/Schemas', schemaDocuments, 'Schema'],
  ] as const;
  for (const [path, documents, what] of discovery) {
    router.get(
      path,
      route(async (_req, res, l) => {
        const all: { id: string }[] = documents(l.baseUrl);
        send(res, 200, listResponse(all, all.length, 1));
      }),
    );
    router.get(
      `${path}/:id`,
      route(async (req, res, l) => {
        const found = (documents(l.baseUrl) as { id: string }[]).find((d) => d.id === req.params.id);
        if (!found) throw new ScimError(404, undefined, `${what} not found`);
        send(res, 200, found);
      }),
    );
  }

  router.get(
    '/Users',
    route(async (req, res, l) => {
      const query = readListQuery(req);
      const filter = query.filter ? parseUserFilter(query.filter) : undefined;
      const result = await l.org.searchMembers(
        filter,
        { offset: query.startIndex - 1, limit: query.count },
        { withGroups: wants(query, 'groups') },
      );
      const resources = result.items.map((m) => project(renderUser(m, result.groups.get(m.id) ?? [], l.baseUrl), query, CORE_USER));
      send(res, 200, listResponse(resources, result.total, query.startIndex));
    }),
  );
  router.post(
    '/Users',
    route(async (req, res, l) => {
      requireBody(req);
      const user = await atomically(l, (org) => createUser(org, req.body, l.baseUrl));
      res.setHeader('Location', (user.meta as Json).location as string);
      send(res, 201, project(user, readListQuery(req), CORE_USER));
    }),
  );
  router.get(
    '/Users/:id',
    route(async (req, res, l) => send(res, 200, project(await loadUser(l.org, req.params.id!, l.baseUrl), readListQuery(req), CORE_USER))),
  );
  router.put(
    '/Users/:id',
    route(async (req, res, l) => {
      requireBody(req);
      send(res, 200, project(await atomically(l, (org) => replaceUser(org, req.params.id!, req.body, l.baseUrl)), readListQuery(req), CORE_USER));
    }),
  );
  router.patch(
    '/Users/:id',
    route(async (req, res, l) => {
      requireBody(req);
      send(res, 200, project(await atomically(l, (org) => patchUser(org, req.params.id!, req.body, l.baseUrl)), readListQuery(req), CORE_USER));
    }),
  );
  router.delete(
    '/Users/:id',
    route(async (req, res, l) => {
      await l.org.removeMember(req.params.id!);
      send(res, 204);
    }),
  );

  router.get(
    '/Groups',
    route(async (req, res, l) => {
      const query = readListQuery(req);
      const filter = query.filter ? parseGroupFilter(query.filter) : undefined;
      const result = await l.org.searchGroups(filter, { offset: query.startIndex - 1, limit: query.count });
      // Entra asks with excludedAttributes=members: then no membership is read at all.
      const members = wants(query, 'members') ? await l.org.membersOfGroups(result.items.map((g) => g.id)) : undefined;
      const resources = result.items.map((g) =>
        project(renderGroup(g, members ? (members.get(g.id) ?? []) : undefined, l.baseUrl), query, CORE_GROUP),
      );
      send(res, 200, listResponse(resources, result.total, query.startIndex));
    }),
  );
  router.post(
    '/Groups',
    route(async (req, res, l) => {
      requireBody(req);
      const group = await atomically(l, (org) => createGroup(org, req.body, l.baseUrl));
      res.setHeader('Location', (group.meta as Json).location as string);
      send(res, 201, project(group, readListQuery(req), CORE_GROUP));
    }),
  );
  router.get(
    '/Groups/:id',
    route(async (req, res, l) => {
      const query = readListQuery(req);
      send(res, 200, project(await loadGroup(l.org, req.params.id!, l.baseUrl, wants(query, 'members')), query, CORE_GROUP));
    }),
  );
  router.put(
    '/Groups/:id',
    route(async (req, res, l) => {
      requireBody(req);
      send(res, 200, project(await atomically(l, (org) => replaceGroup(org, req.params.id!, req.body, l.baseUrl)), readListQuery(req), CORE_GROUP));
    }),
  );
  router.patch(
    '/Groups/:id',
    route(async (req, res, l) => {
      requireBody(req);
      await atomically(l, (org) => patchGroup(org, req.params.id!, req.body));
      // 204 is what Entra prefers for group PATCH (idp-behaviour.md); a client asking for attributes gets the group.
      const query = readListQuery(req);
      if (query.attributes.length > 0) return send(res, 200, project(await loadGroup(l.org, req.params.id!, l.baseUrl), query, CORE_GROUP));
      send(res, 204);
    }),
  );
  router.delete(
    '/Groups/:id',
    route(async (req, res, l) => {
      await l.org.deleteGroup(req.params.id!);
      send(res, 204);
    }),
  );

  router.use((req, res) => {
    sendError(res, new ScimError(404, undefined, `No SCIM endpoint ${req.method} ${req.path}`));
  });
  // The one gate on what leaves SCIM: every failure, authentication's included, is answered here.
  router.use(scimErrorHandler);
  return router;
}

/** Answers anything thrown while serving SCIM in the RFC 7644 §3.12 format; internal text never leaves. */
export function scimErrorHandler(error: unknown, req: Request, res: Response, next: NextFunction): void {
  // Once the answer has begun, express's own handler can only cut the connection.
  if (res.headersSent) return next(error);
  const body = error as { type?: string };
  if (body.type === 'entity.parse.failed') return void sendError(res, new ScimError(400, 'invalidSyntax', 'The body is not valid JSON'));
  if (body.type === 'entity.too.large') return void sendError(res, new ScimError(413, undefined, 'The body is too large'));
  if (body.type === 'charset.unsupported' || body.type === 'encoding.unsupported') {
    return void sendError(res, new ScimError(415, undefined, 'Unsupported encoding'));
  }
  const clientStatus = clientErrorStatus(error);
  if (clientStatus !== undefined) {
    return void sendError(res, new ScimError(clientStatus, clientStatus === 400 ? 'invalidSyntax' : undefined, UNDECODABLE));
  }
  const sent = sendError(res, error, `Something went wrong; quote request id ${String(req.id)} when reporting it`);
  if (sent.unexpected) req.log?.error({ err: error }, 'unhandled SCIM error');
  else if (sent.status === 503) req.log?.warn({ err: error }, 'SCIM request failed: the database is unavailable');
}

/** Answers `error` with an RFC 7644 §3.12 Error body, whatever it is; answers what was sent. */
function sendError(res: Response, error: unknown, internalDetail?: string): RenderedScimError {
  const rendered = renderScimError(error, internalDetail);
  if (rendered.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
  if (rendered.retryAfter !== undefined) res.setHeader('Retry-After', String(rendered.retryAfter));
  sendJson(res, rendered.status, rendered.body);
  return rendered;
}

/**
 * Writes a SCIM JSON body with `end`, not Express's `send`: `send` adds a weak ETag and answers
 * If-None-Match with 304, while ServiceProviderConfig says ETags are not supported (RFC 7644 §3.14).
 */
function sendJson(res: Response, status: number, body: unknown): void {
  res.status(status).type(SCIM_JSON).end(JSON.stringify(body));
}

/** Resolves the organization from the path and its SCIM key; nothing else is ever in scope. */
function authenticate(options: ScimRouterOptions) {
  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      const organizationId = req.params.organizationId!;
      const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      if (!match) throw new ScimError(401, undefined, 'A SCIM bearer key is required');
      const org = await options.engine.organizationByScimKey(organizationId, match[1]!);
      res.locals.org = org;
      res.locals.baseUrl = `${options.publicUrl}/scim/v2/${organizationId}`;
    } catch (error) {
      // To the error middleware, which answers anything (a database outage included) in SCIM's format.
      return next(error);
    }
    next();
  };
}

interface ListQuery {
  filter: string | undefined;
  startIndex: number;
  count: number;
  attributes: string[];
  excludedAttributes: string[];
}

/** A list naming every User attribute and sub-attribute, extension ones by URN, is 1,707 characters. */
const MAX_ATTRIBUTE_LIST_LENGTH = 4096;

/**
 * RFC 7644 §3.4.2.4: startIndex below 1 is 1; count below 0 is 0; counts above our maximum are
 * capped. A filter or attribute list longer than its cap is refused before anything reads it.
 */
function readListQuery(req: Request): ListQuery {
  const one = (name: string, limit?: { length: number; scimType: 'invalidFilter' | 'invalidValue' }): string | undefined => {
    const value = req.query[name];
    if (Array.isArray(value)) throw new ScimError(400, 'invalidValue', `${name} is given more than once`);
    if (typeof value !== 'string') return undefined;
    if (limit && value.length > limit.length) throw new ScimError(400, limit.scimType, `${name} is at most ${limit.length} characters`);
    return value;
  };
  const integer = (name: string, fallback: number) => {
    const raw = one(name);
    if (raw === undefined || raw === '') return fallback;
    if (!/^-?\d+$/.test(raw.trim())) throw new ScimError(400, 'invalidValue', `${name} must be an integer`);
    return Number.parseInt(raw, 10);
  };
  const list = (name: string) =>
    (one(name, { length: MAX_ATTRIBUTE_LIST_LENGTH, scimType: 'invalidValue' }) ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const filter = one('filter', { length: MAX_FILTER_LENGTH, scimType: 'invalidFilter' })?.trim();
  return {
    filter: filter || undefined,
    // Capped far past any organization's size, so a huge value is simply past the end.
    startIndex: Math.min(MAX_START_INDEX, Math.max(1, integer('startIndex', 1))),
    count: Math.min(MAX_RESULTS, Math.max(0, integer('count', 100))),
    attributes: list('attributes'),
    excludedAttributes: list('excludedAttributes'),
  };
}

function listResponse(resources: unknown[], total: number, startIndex: number) {
  return { schemas: [LIST_RESPONSE], totalResults: total, startIndex, itemsPerPage: resources.length, Resources: resources };
}

const attributeName = (name: string, core: string) => {
  const lower = name.toLowerCase();
  const prefix = `${core.toLowerCase()}:`;
  return lower.startsWith(prefix) ? lower.slice(prefix.length) : lower;
};

/** Whether the response needs top-level `attribute` (so expensive joins can be skipped). */
function wants(query: ListQuery, attribute: string): boolean {
  const a = attribute.toLowerCase();
  if (query.attributes.length > 0) return query.attributes.some((n) => n.toLowerCase().replace(/^.*:/, '').split('.')[0] === a);
  return !query.excludedAttributes.some((n) => n.toLowerCase().replace(/^.*:/, '') === a);
}

/**
 * `attributes` / `excludedAttributes` (RFC 7644 §3.9, §3.10): `id` and `schemas` are always
 * returned; sub-attributes (`name.givenName`) and extension attributes by full URN are understood,
 * and so are sub-attributes of multi-valued attributes (`attributes=emails.value`,
 * `excludedAttributes=emails.type`), which apply to each value.
 */
function project(doc: Json, query: ListQuery, core: string): Json {
  if (query.attributes.length > 0) {
    // Each top-level attribute asked for, whole (null) or by the sub-attributes named.
    const asked = new Map<string, Set<string> | null>();
    for (const requested of query.attributes.map((n) => attributeName(n, core))) {
      const [top, sub] = splitAttribute(requested);
      const key = Object.keys(doc).find((k) => k.toLowerCase() === top);
      if (!key) continue;
      const subs = asked.get(key);
      if (sub === undefined || subs === null) asked.set(key, null);
      else asked.set(key, new Set([...(subs ?? []), sub]));
    }
    const out: Json = { schemas: doc.schemas, id: doc.id };
    for (const [key, subs] of asked) {
      const value = subs === null ? doc[key] : withSubAttributes(doc[key], (k) => subs.has(k.toLowerCase()));
      if (value !== undefined) out[key] = value;
    }
    return out;
  }
  if (query.excludedAttributes.length > 0) {
    const out: Json = { ...doc };
    for (const excluded of query.excludedAttributes.map((n) => attributeName(n, core))) {
      const [top, sub] = splitAttribute(excluded);
      const key = Object.keys(out).find((k) => k.toLowerCase() === top);
      if (!key || key === 'id' || key === 'schemas') continue;
      if (sub === undefined) delete out[key];
      else if (typeof out[key] === 'object' && out[key] !== null) {
        const value = withSubAttributes(out[key], (k) => k.toLowerCase() !== sub);
        if (value === undefined) delete out[key];
        else out[key] = value;
      }
    }
    return out;
  }
  return doc;
}

const isJsonObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A complex attribute, or each value of a multi-valued one, with only the sub-attributes `keep`
 * accepts; values left empty are dropped, and so is an attribute left with nothing (undefined).
 */
function withSubAttributes(value: unknown, keep: (key: string) => boolean): unknown {
  const pick = (v: Json): Json | undefined => {
    const picked = Object.fromEntries(Object.entries(v).filter(([k]) => keep(k)));
    return Object.keys(picked).length > 0 ? picked : undefined;
  };
  if (isJsonObject(value)) return pick(value);
  if (Array.isArray(value)) {
    const values = value.flatMap((v) => (isJsonObject(v) ? (pick(v) ?? []) : []));
    return values.length > 0 ? values : undefined;
  }
  return undefined;
}

/** Splits `urn:…:User:manager` or `name.givenName` into its top-level key and sub-attribute. */
function splitAttribute(name: string): [string, string | undefined] {
  if (name.startsWith('urn:')) {
    const colon = name.lastIndexOf(':');
    return [name.slice(0, colon), name.slice(colon + 1).split('.')[0]];
  }
  const [top, sub] = name.split('.');
  return [top!, sub];
}
