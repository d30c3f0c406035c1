/**
 * The OpenAPI 3.1 document of /api/v1, generated from the route table: request bodies and query
 * parameters from the zod schemas that validate them, answers from the routes' response schemas,
 * and the 4xx answers each route can give, all as problem+json (RFC 9457). Linted in
 * test/http/openapi-lint.test.ts with Redocly's recommended rules.
 */
import { z } from 'zod';
import type { Route } from './route.js';
import { NAMED_RESPONSE_SCHEMAS } from './schemas.js';

/**
 * Operations that can answer 409: a status that does not allow the change (`status.invalid`), no
 * free seat, the last owner or provider admin, a taken value (`conflict`), a policy in the way, a
 * sync already queued. Keyed by operationId; test/http/openapi.test.ts checks each one exists.
 */
export const CONFLICTING_OPERATIONS: ReadonlySet<string> = new Set([
  'createClient',
  'updateClient',
  'confirmProviderUser',
  'reinviteProviderUser',
  'updateProviderUser',
  'removeProviderUser',
  'inviteMembers',
  'enableScim',
  'updateMember',
  'removeMember',
  'confirmMember',
  'revokeMember',
  'restoreMember',
  'reinviteMember',
  'createGroup',
  'updateGroup',
  'createCollection',
  'updateCollection',
  'putPolicy',
  'startDirectorySync',
  'addDomain',
]);

const problemContent = { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } };

/** Shared answers, referenced by each operation that can give them. */
const PROBLEM_RESPONSES = {
  BadRequest: {
    description: 'The body or a query parameter is invalid (`errors` lists every path), or the body is not JSON',
    content: problemContent,
  },
  Unauthorized: {
    description: 'No bearer token, or one that is unknown, expired or revoked',
    headers: { 'WWW-Authenticate': { description: '`Bearer`', schema: { type: 'string' } } },
    content: problemContent,
  },
  Forbidden: {
    description: 'The caller may not do this here (role, plan, disabled tenant, policy)',
    content: problemContent,
  },
  NotFound: {
    description: 'A path id names nothing the caller can see',
    content: problemContent,
  },
  Conflict: {
    description: 'The current state does not allow this (status, seats, last owner or admin, a taken value)',
    content: problemContent,
  },
  Problem: {
    description: 'Any other problem (413, 415, 429, 500, 503)',
    content: problemContent,
  },
} as const;

const ref = (name: keyof typeof PROBLEM_RESPONSES) => ({ $ref: `#/components/responses/${name}` });
const uri = (id: string) => `#/components/schemas/${id}`;
const pascal = (operationId: string) => `${operationId[0]!.toUpperCase()}${operationId.slice(1)}`;

/** zod's JSON Schema (draft 2020-12, OpenAPI 3.1's dialect) without the per-schema `$schema` and `$id`. */
function bare(schema: unknown): Record<string, unknown> {
  const { $schema: _s, $id: _i, ...rest } = schema as Record<string, unknown>;
  return rest;
}

/**
 * Every body and answer as a named component: the shared response objects under their own names,
 * the rest `<OperationId>Request` / `<OperationId>Response`. Two registries, because a request is
 * described as it is sent (defaults optional) and an answer as it is rendered.
 */
function componentSchemas(routes: Route[]) {
  const requests = z.registry<{ id: string }>();
  const responses = z.registry<{ id: string }>();
  const requestName = new Map<z.ZodType, string>();
  const responseName = new Map<z.ZodType, string>();
  for (const [id, schema] of Object.entries(NAMED_RESPONSE_SCHEMAS)) {
    responses.add(schema, { id });
    responseName.set(schema, id);
  }
  for (const r of routes) {
    if (r.body && !requestName.has(r.body)) {
      requestName.set(r.body, `${pascal(r.operationId)}Request`);
      requests.add(r.body, { id: `${pascal(r.operationId)}Request` });
    }
    if (r.response && !responseName.has(r.response)) {
      responseName.set(r.response, `${pascal(r.operationId)}Response`);
      responses.add(r.response, { id: `${pascal(r.operationId)}Response` });
    }
  }
  const convert = (registry: typeof requests, io: 'input' | 'output') =>
    Object.entries(z.toJSONSchema(registry, { io, uri, unrepresentable: 'any' }).schemas).map(([id, s]) => [id, bare(s)] as const);
  const schemas = Object.fromEntries([...convert(requests, 'input'), ...convert(responses, 'output')]);
  return { schemas, requestName, responseName };
}

export function buildOpenApi(routes: Route[], options: { serverUrl: string; version: string }) {
  const { schemas, requestName, responseName } = componentSchemas(routes);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    const pathParams = [...r.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
    const parameters: unknown[] = pathParams.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
    if (r.query) {
      const schema = bare(z.toJSONSchema(r.query, { io: 'input', unrepresentable: 'any' })) as {
        properties?: Record<string, { description?: string }>;
        required?: string[];
      };
      for (const [name, property] of Object.entries(schema.properties ?? {})) {
        parameters.push({ name, in: 'query', required: schema.required?.includes(name) ?? false, schema: property });
      }
    }
    const status = String(r.status ?? 200);
    const success =
      status === '204'
        ? { description: 'No content' }
        : {
            description: 'Success',
            content: {
              'application/json': { schema: r.response ? { $ref: uri(responseName.get(r.response)!) } : {} },
            },
          };
    const responses: Record<string, unknown> = { [status]: success };
    // Every route answers 400: to a bad body or query, and to query parameters it does not take.
    responses['400'] = ref('BadRequest');
    // `optional` routes ignore a missing token but refuse a bad one.
    if (r.auth !== 'none') responses['401'] = ref('Unauthorized');
    if (r.auth === 'bearer') responses['403'] = ref('Forbidden');
    if (pathParams.length > 0) responses['404'] = ref('NotFound');
    if (CONFLICTING_OPERATIONS.has(r.operationId)) responses['409'] = ref('Conflict');
    responses.default = ref('Problem');

    paths[path] ??= {};
    paths[path]![r.method] = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      ...(r.auth === 'none' ? { security: [] } : r.auth === 'optional' ? { security: [{}, { bearer: [] }] } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(r.body
        ? {
            requestBody: {
              // POST …/directory/sync may be sent without a body.
              required: !r.body.safeParse(undefined).success,
              content: { 'application/json': { schema: { $ref: uri(requestName.get(r.body)!) } } },
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Portico API',
      version: options.version,
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      description: 'Identity provisioning for managed service providers. Errors are application/problem+json (RFC 9457).',
    },
    servers: [{ url: `${options.serverUrl}/api/v1` }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas,
      responses: PROBLEM_RESPONSES,
    },
    security: [{ bearer: [] }],
    paths,
  };
}
