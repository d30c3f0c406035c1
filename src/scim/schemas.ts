/**
 * Schema URNs and scimmy's schema definitions. scimmy keeps schemas on process-wide classes; we
 * declare them once here, identically for every organization, and never set a per-request
 * basepath on them (that global is what leaks one tenant's meta.location into another's response
 * under concurrency in scimmy-routers). Locations are rendered per request by this adapter.
 */
import SCIMMY from 'scimmy';

export const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const CORE_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_USER = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const LIST_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const SPC_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';
export const RESOURCE_TYPE_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType';
export const SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';

// Declared once at load: the User resource carries the optional enterprise extension.
SCIMMY.Resources.declare(SCIMMY.Resources.User).extend(SCIMMY.Schemas.EnterpriseUser, false);
SCIMMY.Resources.declare(SCIMMY.Resources.Group);

export const UserSchema = SCIMMY.Schemas.User;
export const GroupSchema = SCIMMY.Schemas.Group;

/** RFC 7643 §3.1 common attributes, which the schema documents do not list. */
const COMMON_ATTRIBUTES = ['id', 'externalid', 'meta'];

const attributeNames = (schema: typeof UserSchema | typeof GroupSchema) =>
  new Set([
    ...COMMON_ATTRIBUTES,
    ...(schema.definition.describe().attributes as { name: string }[]).map((a) => a.name.toLowerCase()),
  ]);

/** Top-level attribute names each resource accepts (lower-cased), besides extension URNs. */
export const USER_ATTRIBUTES = attributeNames(UserSchema);
export const GROUP_ATTRIBUTES = attributeNames(GroupSchema);

/** The page size cap we advertise in ServiceProviderConfig and enforce. */
export const MAX_RESULTS = 200;

export function serviceProviderConfig(baseUrl: string) {
  return {
    schemas: [SPC_SCHEMA],
    documentationUri: 'https://datatracker.ietf.org/doc/html/rfc7644',
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: MAX_RESULTS },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: false },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'OAuth Bearer Token',
        description: "The organization's SCIM key, sent as Authorization: Bearer <key>",
        specUri: 'https://www.rfc-editor.org/info/rfc6750',
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${baseUrl}/ServiceProviderConfig` },
  };
}

export function resourceTypes(baseUrl: string) {
  return [
    {
      schemas: [RESOURCE_TYPE_SCHEMA],
      id: 'User',
      name: 'User',
      endpoint: '/Users',
      description: 'A member of the organization',
      schema: CORE_USER,
      schemaExtensions: [{ schema: ENTERPRISE_USER, required: false }],
      meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/User` },
    },
    {
      schemas: [RESOURCE_TYPE_SCHEMA],
      id: 'Group',
      name: 'Group',
      endpoint: '/Groups',
      description: 'A group of the organization',
      schema: CORE_GROUP,
      meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/Group` },
    },
  ];
}

export function schemaDocuments(baseUrl: string) {
  return [UserSchema, GroupSchema, SCIMMY.Schemas.EnterpriseUser].map((s) => {
    const described = s.definition.describe() as Record<string, unknown> & { id: string };
    return {
      ...described,
      schemas: [SCHEMA_SCHEMA],
      meta: { resourceType: 'Schema', location: `${baseUrl}/Schemas/${described.id}` },
    };
  });
}
