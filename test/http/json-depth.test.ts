/**
 * /api/v1 bodies are capped in nesting depth before any route sees them (issue 6, point 2), and
 * the measure itself is a loop, not a recursion, so no depth of input can overflow it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from '../../src/http/json-depth.js';
import { startTestApp, SYSTEM_TOKEN, type TestApp } from '../support/app.js';
import { describeEachDriver } from '../support/db.js';
import { createClient, expectProblem, must, setupProvider, tableCounts, uniqueEmail, type SeededProvider } from '../support/http-seed.js';

/** `[[[…]]]` nested `depth` levels, as JSON text. */
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('JSON depth', () => {
  it('counts the arrays and objects on the deepest branch, not strings or scalars', () => {
    expect(exceedsJsonDepth({ a: [{}], b: 1 }, 3)).toBe(false);
    expect(exceedsJsonDepth({ a: [{}], b: 1 }, 2)).toBe(true);
    expect(exceedsJsonDepth([[], [[]], []], 3)).toBe(false);
    expect(exceedsJsonDepth([[], [[[]]], []], 3)).toBe(true);
    expect(exceedsJsonDepth('[[[[[[', 0)).toBe(false);
    expect(exceedsJsonDepth(null, 0)).toBe(false);
    expect(exceedsJsonDepth(Array.from({ length: 50_000 }, () => ({ a: [1] })), 3)).toBe(false);
  });

  it('measures a value 200,000 levels deep without overflowing the stack', () => {
    // JSON.parse builds it iteratively; a recursive walk of it would overflow.
    const deep = JSON.parse(nested(200_000)) as unknown;
    expect(exceedsJsonDepth(deep, MAX_JSON_DEPTH)).toBe(true);
    expect(exceedsJsonDepth(deep, 200_000)).toBe(false);
  });
});

describeEachDriver('/api/v1 JSON depth', (driver) => {
  let t: TestApp;
  let p: SeededProvider;
  let oid: string;
  let scimToken: string;

  beforeAll(async () => {
    t = await startTestApp(driver);
    p = await setupProvider(t);
    oid = (await createClient(t, p)).id;
    scimToken = must(await t.request('POST', `/api/v1/organizations/${oid}/scim`, { token: p.adminToken }), 200, 'enable SCIM').token;
  });
  afterAll(async () => {
    await t?.close();
  });
  const scimKeyWorks = async (token: string) => (await t.request('GET', `/scim/v2/${oid}/Users?count=1`, { token })).status === 200;

  it('refuses a body nested 3,000 deep with a 400 problem before the route runs: the SCIM key is not rotated', async () => {
    const before = await tableCounts(t);
    // The rotate route reads no body: the refusal comes from the parser stage, which every route shares.
    expectProblem(await t.request('POST', `/api/v1/organizations/${oid}/scim/rotate`, { token: p.adminToken, raw: nested(3000) }), 400, 'request.invalid');
    expectProblem(
      await t.request('POST', '/api/v1/providers', { token: SYSTEM_TOKEN, raw: `{"name":"Deep","adminEmail":"${uniqueEmail()}","x":${nested(3000)}}` }),
      400,
      'request.invalid',
    );
    expect(await tableCounts(t)).toEqual(before);
    expect(await scimKeyWorks(scimToken)).toBe(true);
  });

  it(`refuses ${MAX_JSON_DEPTH + 1} levels and takes ${MAX_JSON_DEPTH}`, async () => {
    const rotate = (raw: string) => t.request('POST', `/api/v1/organizations/${oid}/scim/rotate`, { token: p.adminToken, raw });
    expectProblem(await rotate(nested(MAX_JSON_DEPTH + 1)), 400, 'request.invalid');
    expect(await scimKeyWorks(scimToken)).toBe(true);
    const rotated = must(await rotate(nested(MAX_JSON_DEPTH)), 200, 'rotate the SCIM key');
    expect(await scimKeyWorks(scimToken)).toBe(false);
    expect(await scimKeyWorks(rotated.token)).toBe(true);
    scimToken = rotated.token;
  });
});
