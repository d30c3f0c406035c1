/**
 * Discovery (RFC 7644 §4, RFC 7643 §5–7): ServiceProviderConfig, ResourceTypes and Schemas tell
 * the truth about what this server does, with locations under the organization's base URL.
 */
import { expect, it } from 'vitest';
import { describeEachDriver } from '../support/db.js';
import {
  CORE_GROUP,
  CORE_USER,
  ENTERPRISE_USER,
  expectListResponse,
  expectScim,
  expectScimError,
  useScimApp,
} from '../support/scim.js';

const SPC = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';
const RESOURCE_TYPE = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType';
const SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';

describeEachDriver('SCIM discovery', (driver) => {
  const s = useScimApp(driver);

  it('advertises PATCH and filtering with maxResults, and neither bulk, ETags, sorting nor password changes', async () => {
    const org = await s.organization();
    const spc = expectScim(await org.get('/ServiceProviderConfig'), 200);
    expect(spc).toMatchObject({
      schemas: [SPC],
      patch: { supported: true },
      bulk: { supported: false },
      filter: { supported: true, maxResults: expect.any(Number) },
      changePassword: { supported: false },
      sort: { supported: false },
      etag: { supported: false },
      meta: { resourceType: 'ServiceProviderConfig', location: `${org.baseUrl}/ServiceProviderConfig` },
    });
    expect(Number.isInteger(spc.filter.maxResults) && spc.filter.maxResults > 0).toBe(true);
    expect(spc.authenticationSchemes).toEqual([expect.objectContaining({ type: 'oauthbearertoken', primary: true })]);
    // Truthful: there is no Bulk endpoint.
    expectScimError(await org.post('/Bulk', { schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'], Operations: [] }), 404);
  });

  it('lists the User (with the optional enterprise extension) and Group resource types', async () => {
    const org = await s.organization();
    const types = expectListResponse(await org.get('/ResourceTypes'), { totalResults: 2 });
    const user = {
      schemas: [RESOURCE_TYPE],
      id: 'User',
      name: 'User',
      endpoint: '/Users',
      description: expect.any(String),
      schema: CORE_USER,
      schemaExtensions: [{ schema: ENTERPRISE_USER, required: false }],
      meta: { resourceType: 'ResourceType', location: `${org.baseUrl}/ResourceTypes/User` },
    };
    const group = {
      schemas: [RESOURCE_TYPE],
      id: 'Group',
      name: 'Group',
      endpoint: '/Groups',
      description: expect.any(String),
      schema: CORE_GROUP,
      meta: { resourceType: 'ResourceType', location: `${org.baseUrl}/ResourceTypes/Group` },
    };
    expect(types).toEqual([user, group]);
    expect(expectScim(await org.get('/ResourceTypes/User'), 200)).toEqual(user);
    expect(expectScim(await org.get('/ResourceTypes/Group'), 200)).toEqual(group);
    expectScimError(await org.get('/ResourceTypes/Device'), 404);
    // Each advertised endpoint answers.
    for (const type of types) expectListResponse(await org.get(`${type.endpoint}?count=0`), { totalResults: 0 });
  });

  it('serves the User, Group and enterprise User schemas, each also by id, with locations under the base URL', async () => {
    const org = await s.organization();
    const schemas = expectListResponse(await org.get('/Schemas'), { totalResults: 3 });
    expect(schemas.map((x) => x.id)).toEqual([CORE_USER, CORE_GROUP, ENTERPRISE_USER]);
    for (const document of schemas) {
      expect(document.schemas).toEqual([SCHEMA]);
      expect(document.meta).toEqual({ resourceType: 'Schema', location: `${org.baseUrl}/Schemas/${document.id}` });
      expect(expectScim(await org.get(`/Schemas/${document.id}`), 200)).toEqual(document);
    }
    expectScimError(await org.get('/Schemas/urn:ietf:params:scim:schemas:core:2.0:Device'), 404);

    const attributes = (id: string) => (schemas.find((x) => x.id === id)!.attributes as { name: string }[]);
    const userName = attributes(CORE_USER).find((a) => a.name === 'userName');
    // userName is unique and compared case-insensitively, as the server enforces.
    expect(userName).toMatchObject({ required: true, caseExact: false, uniqueness: 'server' });
    expect(attributes(CORE_USER).find((a) => a.name === 'password')).toMatchObject({ returned: 'never', mutability: 'writeOnly' });
    expect(attributes(CORE_GROUP).map((a) => a.name)).toEqual(expect.arrayContaining(['displayName', 'members']));
    expect(attributes(ENTERPRISE_USER).map((a) => a.name)).toEqual(expect.arrayContaining(['employeeNumber', 'department', 'manager']));
  });

  it("answers discovery of each organization with that organization's own locations", async () => {
    const a = await s.organization();
    const b = await s.organization();
    const [spcA, spcB, typesA, typesB] = await Promise.all([
      a.get('/ServiceProviderConfig'),
      b.get('/ServiceProviderConfig'),
      a.get('/Schemas'),
      b.get('/Schemas'),
    ]);
    expect(spcA.body.meta.location).toBe(`${a.baseUrl}/ServiceProviderConfig`);
    expect(spcB.body.meta.location).toBe(`${b.baseUrl}/ServiceProviderConfig`);
    for (const x of typesA.body.Resources) expect(x.meta.location.startsWith(`${a.baseUrl}/`)).toBe(true);
    for (const x of typesB.body.Resources) expect(x.meta.location.startsWith(`${b.baseUrl}/`)).toBe(true);
  });
});
