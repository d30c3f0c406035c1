/**
 * The /api/v1 routes. Each translates the request into an engine call on a capability handle
 * (resolved from the caller's token and the path's tenant id) and renders the answer.
 */
import type { z } from 'zod';
import type { Engine, Principal } from '../membership/index.js';
import { principalOf, route, type HandlerContext, type Route } from './route.js';
import { ssoConfigBody } from '../sso/settings.js';
import * as s from './schemas.js';

type Ctx<B = undefined, Q = undefined> = HandlerContext<B, Q>;

const provider = (ctx: Ctx<unknown, unknown>) => ctx.engine.provider(ctx.params.pid!, principalOf(ctx));
const organization = (ctx: Ctx<unknown, unknown>) => ctx.engine.organization(ctx.params.oid!, principalOf(ctx));
const scimBaseUrl = (ctx: Ctx<unknown, unknown>) => `${ctx.engine.publicUrl}/scim/v2/${ctx.params.oid!}`;
const list = async <T>(items: Promise<T[]>) => ({ data: await items });
const noContent = async (work: Promise<unknown>) => {
  await work;
  return undefined;
};

const accountRoutes: Route[] = [
  route({
    method: 'get',
    path: '/me',
    tag: 'account',
    summary: 'The signed-in person with its providers and organizations',
    auth: 'bearer',
    handle: (ctx) => ctx.engine.me(principalOf(ctx)),
  }),
  route({
    method: 'get',
    path: '/me/tokens',
    tag: 'account',
    summary: 'List personal API tokens (never their secrets)',
    auth: 'bearer',
    handle: (ctx) => list(ctx.engine.listTokens(principalOf(ctx))),
  }),
  route<z.infer<typeof s.createToken>>({
    method: 'post',
    path: '/me/tokens',
    tag: 'account',
    summary: 'Create a personal API token; the secret is shown once',
    auth: 'bearer',
    body: s.createToken,
    status: 201,
    handle: (ctx) => ctx.engine.createToken(principalOf(ctx), ctx.body.name),
  }),
  route({
    method: 'delete',
    path: '/me/tokens/:tid',
    tag: 'account',
    summary: 'Revoke a personal API token',
    auth: 'bearer',
    status: 204,
    handle: (ctx) => noContent(ctx.engine.revokeToken(principalOf(ctx), ctx.params.tid!)),
  }),
  route<z.infer<typeof s.acceptInvitation>>({
    method: 'post',
    path: '/invitations/accept',
    tag: 'account',
    summary: 'Accept a provider-user or member invitation with its mailed token',
    auth: 'optional',
    body: s.acceptInvitation,
    handle: (ctx) => ctx.engine.acceptInvitation(ctx.body, ctx.principal),
  }),
  route<z.infer<typeof s.exchangeSsoCode>>({
    method: 'post',
    path: '/sso/token',
    tag: 'sso',
    summary: 'Exchange the one-time code an SSO sign-in returned with for a session token (once, within a minute)',
    auth: 'none',
    body: s.exchangeSsoCode,
    handle: (ctx) => ctx.engine.signIn.exchangeCode(ctx.body.code).then(({ kind: _kind, ...session }) => session),
  }),
  route<undefined, z.infer<typeof s.outboxQuery>>({
    method: 'get',
    path: '/outbox',
    tag: 'operator',
    summary: 'Operator: the newest mails of the outbox, delivered or not',
    auth: 'bearer',
    query: s.outboxQuery,
    handle: (ctx) => list(ctx.engine.listOutbox(principalOf(ctx), ctx.query)),
  }),
];

const providerRoutes: Route[] = [
  route<z.infer<typeof s.createProvider>>({
    method: 'post',
    path: '/providers',
    tag: 'providers',
    summary: 'Operator: create a provider and mail its admin a setup invitation',
    auth: 'bearer',
    body: s.createProvider,
    status: 201,
    handle: (ctx) => ctx.engine.createProvider(principalOf(ctx), ctx.body),
  }),
  route({
    method: 'get',
    path: '/providers',
    tag: 'providers',
    summary: 'Operator: list providers',
    auth: 'bearer',
    handle: (ctx) => list(ctx.engine.listProviders(principalOf(ctx))),
  }),
  route<z.infer<typeof s.providerSetup>>({
    method: 'post',
    path: '/providers/setup',
    tag: 'providers',
    summary: 'Complete provider setup with the mailed token',
    auth: 'none',
    body: s.providerSetup,
    handle: (ctx) => ctx.engine.completeProviderSetup(ctx.body),
  }),
  route({
    method: 'get',
    path: '/providers/:pid',
    tag: 'providers',
    summary: 'Get a provider',
    auth: 'bearer',
    handle: async (ctx) => (await provider(ctx)).get(),
  }),
  route<z.infer<typeof s.updateProvider>>({
    method: 'patch',
    path: '/providers/:pid',
    tag: 'providers',
    summary: 'Provider Admin: edit the provider',
    auth: 'bearer',
    body: s.updateProvider,
    handle: async (ctx) => (await provider(ctx)).update(ctx.body),
  }),
  ...(['enable', 'disable'] as const).map((verb) =>
    route({
      method: 'post',
      path: `/providers/:pid/${verb}`,
      tag: 'providers',
      summary: `Operator: ${verb} a provider and all its client organizations`,
      auth: 'bearer',
      handle: (ctx) => ctx.engine.setProviderEnabled(principalOf(ctx), ctx.params.pid!, verb === 'enable'),
    }),
  ),
  route({
    method: 'get',
    path: '/providers/:pid/users',
    tag: 'provider users',
    summary: 'Provider Admin: list provider users',
    auth: 'bearer',
    handle: async (ctx) => list((await provider(ctx)).listUsers()),
  }),
  route<z.infer<typeof s.inviteProviderUsers>>({
    method: 'post',
    path: '/providers/:pid/users',
    tag: 'provider users',
    summary: 'Provider Admin: invite up to 20 provider users',
    auth: 'bearer',
    body: s.inviteProviderUsers,
    status: 201,
    handle: async (ctx) => (await provider(ctx)).inviteUsers(ctx.body),
  }),
  ...(['confirm', 'reinvite'] as const).map((verb) =>
    route({
      method: 'post',
      path: `/providers/:pid/users/:uid/${verb}`,
      tag: 'provider users',
      summary: `Provider Admin: ${verb} a provider user`,
      auth: 'bearer',
      handle: async (ctx) => {
        const handle = await provider(ctx);
        return verb === 'confirm' ? handle.confirmUser(ctx.params.uid!) : handle.reinviteUser(ctx.params.uid!);
      },
    }),
  ),
  route<z.infer<typeof s.updateProviderUser>>({
    method: 'patch',
    path: '/providers/:pid/users/:uid',
    tag: 'provider users',
    summary: "Provider Admin: change a provider user's type",
    auth: 'bearer',
    body: s.updateProviderUser,
    handle: async (ctx) => (await provider(ctx)).updateUser(ctx.params.uid!, ctx.body),
  }),
  route({
    method: 'delete',
    path: '/providers/:pid/users/:uid',
    tag: 'provider users',
    summary: 'Provider Admin: remove a provider user',
    auth: 'bearer',
    status: 204,
    handle: async (ctx) => noContent((await provider(ctx)).removeUser(ctx.params.uid!)),
  }),
  route({
    method: 'get',
    path: '/providers/:pid/clients',
    tag: 'clients',
    summary: "List the provider's client organizations",
    auth: 'bearer',
    handle: async (ctx) => list((await provider(ctx)).listClients()),
  }),
  route<z.infer<typeof s.createClient>>({
    method: 'post',
    path: '/providers/:pid/clients',
    tag: 'clients',
    summary: 'Provider Admin: create a managed client organization',
    auth: 'bearer',
    body: s.createClient,
    status: 201,
    handle: async (ctx) => (await provider(ctx)).createClient(ctx.body),
  }),
  route<z.infer<typeof s.updateClient>>({
    method: 'patch',
    path: '/providers/:pid/clients/:oid',
    tag: 'clients',
    summary: 'Rename a client or change its seats',
    auth: 'bearer',
    body: s.updateClient,
    handle: async (ctx) => (await provider(ctx)).updateClient(ctx.params.oid!, ctx.body),
  }),
  route({
    method: 'delete',
    path: '/providers/:pid/clients/:oid',
    tag: 'clients',
    summary: 'Provider Admin: unlink a client (it stays, self-managed)',
    auth: 'bearer',
    handle: async (ctx) => (await provider(ctx)).unlinkClient(ctx.params.oid!),
  }),
  route<undefined, z.infer<typeof s.eventQuery>>({
    method: 'get',
    path: '/providers/:pid/events',
    tag: 'events',
    summary: "Provider Admin: the provider's events, newest first, 50 a page",
    auth: 'bearer',
    query: s.eventQuery,
    handle: async (ctx) => (await provider(ctx)).events(ctx.query),
  }),
];

type MemberVerb = 'confirm' | 'revoke' | 'restore' | 'reinvite';
const memberVerb = {
  confirm: 'confirmMember',
  revoke: 'revokeMember',
  restore: 'restoreMember',
  reinvite: 'reinviteMember',
} as const satisfies Record<MemberVerb, string>;

const organizationRoutes: Route[] = [
  route({
    method: 'get',
    path: '/organizations/:oid',
    tag: 'organizations',
    summary: 'Get an organization',
    auth: 'bearer',
    handle: async (ctx) => (await organization(ctx)).get(),
  }),
  route<undefined, z.infer<typeof s.memberQuery>>({
    method: 'get',
    path: '/organizations/:oid/members',
    tag: 'members',
    summary: 'List members, 100 a page',
    auth: 'bearer',
    query: s.memberQuery,
    handle: async (ctx) => (await organization(ctx)).listMembers(ctx.query),
  }),
  route<z.infer<typeof s.inviteMembers>>({
    method: 'post',
    path: '/organizations/:oid/members',
    tag: 'members',
    summary: 'Invite members (emails already members are skipped)',
    auth: 'bearer',
    body: s.inviteMembers,
    status: 201,
    handle: async (ctx) => (await organization(ctx)).inviteMembers(ctx.body),
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/members/:mid',
    tag: 'members',
    summary: 'Get a member with its groups and collection access',
    auth: 'bearer',
    handle: async (ctx) => (await organization(ctx)).getMember(ctx.params.mid!),
  }),
  route<z.infer<typeof s.updateMember>>({
    method: 'patch',
    path: '/organizations/:oid/members/:mid',
    tag: 'members',
    summary: "Change a member's role, permissions, groups or collection access",
    auth: 'bearer',
    body: s.updateMember,
    handle: async (ctx) => (await organization(ctx)).updateMember(ctx.params.mid!, ctx.body),
  }),
  route({
    method: 'delete',
    path: '/organizations/:oid/members/:mid',
    tag: 'members',
    summary: 'Remove a membership (the account survives)',
    auth: 'bearer',
    status: 204,
    handle: async (ctx) => noContent((await organization(ctx)).removeMember(ctx.params.mid!)),
  }),
  ...(Object.keys(memberVerb) as MemberVerb[]).map((verb) =>
    route({
      method: 'post',
      path: `/organizations/:oid/members/:mid/${verb}`,
      tag: 'members',
      summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} a member`,
      auth: 'bearer',
      handle: async (ctx) => (await organization(ctx))[memberVerb[verb]](ctx.params.mid!),
    }),
  ),
  route({
    method: 'get',
    path: '/organizations/:oid/groups',
    tag: 'groups',
    summary: 'List groups',
    auth: 'bearer',
    handle: async (ctx) => list((await organization(ctx)).listGroups()),
  }),
  route<z.infer<typeof s.createGroup>>({
    method: 'post',
    path: '/organizations/:oid/groups',
    tag: 'groups',
    summary: 'Create a group',
    auth: 'bearer',
    body: s.createGroup,
    status: 201,
    handle: async (ctx) => (await organization(ctx)).createGroup(ctx.body),
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/groups/:gid',
    tag: 'groups',
    summary: 'Get a group with its members and collection access',
    auth: 'bearer',
    handle: async (ctx) => (await organization(ctx)).getGroup(ctx.params.gid!),
  }),
  route<z.infer<typeof s.updateGroup>>({
    method: 'patch',
    path: '/organizations/:oid/groups/:gid',
    tag: 'groups',
    summary: 'Change a group; members and collections, when given, replace the current sets',
    auth: 'bearer',
    body: s.updateGroup,
    handle: async (ctx) => (await organization(ctx)).updateGroup(ctx.params.gid!, ctx.body),
  }),
  route({
    method: 'delete',
    path: '/organizations/:oid/groups/:gid',
    tag: 'groups',
    summary: 'Delete a group',
    auth: 'bearer',
    status: 204,
    handle: async (ctx) => noContent((await organization(ctx)).deleteGroup(ctx.params.gid!)),
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/collections',
    tag: 'collections',
    summary: 'List collections',
    auth: 'bearer',
    handle: async (ctx) => list((await organization(ctx)).listCollections()),
  }),
  route<z.infer<typeof s.createCollection>>({
    method: 'post',
    path: '/organizations/:oid/collections',
    tag: 'collections',
    summary: 'Create a collection',
    auth: 'bearer',
    body: s.createCollection,
    status: 201,
    handle: async (ctx) => (await organization(ctx)).createCollection(ctx.body),
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/collections/:cid',
    tag: 'collections',
    summary: 'Get a collection',
    auth: 'bearer',
    handle: async (ctx) => (await organization(ctx)).getCollection(ctx.params.cid!),
  }),
  route<z.infer<typeof s.updateCollection>>({
    method: 'patch',
    path: '/organizations/:oid/collections/:cid',
    tag: 'collections',
    summary: 'Rename a collection',
    auth: 'bearer',
    body: s.updateCollection,
    handle: async (ctx) => (await organization(ctx)).updateCollection(ctx.params.cid!, ctx.body),
  }),
  route({
    method: 'delete',
    path: '/organizations/:oid/collections/:cid',
    tag: 'collections',
    summary: 'Delete a collection',
    auth: 'bearer',
    status: 204,
    handle: async (ctx) => noContent((await organization(ctx)).deleteCollection(ctx.params.cid!)),
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/policies',
    tag: 'policies',
    summary: 'Every policy type with its state (Enterprise)',
    auth: 'bearer',
    handle: async (ctx) => list((await organization(ctx)).listPolicies()),
  }),
  route<z.infer<typeof s.putPolicy>>({
    method: 'put',
    path: '/organizations/:oid/policies/:type',
    tag: 'policies',
    summary: 'Enable, disable or configure a policy (Enterprise)',
    auth: 'bearer',
    body: s.putPolicy,
    handle: async (ctx) => (await organization(ctx)).putPolicy({ type: ctx.params.type!, ...ctx.body }),
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/scim',
    tag: 'scim',
    summary: "Whether the organization's SCIM endpoint is enabled, and its base URL",
    auth: 'bearer',
    handle: async (ctx) => ({ ...(await (await organization(ctx)).scimStatus()), baseUrl: scimBaseUrl(ctx) }),
  }),
  ...(['', '/rotate'] as const).map((suffix) =>
    route({
      method: 'post',
      path: `/organizations/:oid/scim${suffix}`,
      tag: 'scim',
      summary: suffix
        ? 'Rotate the SCIM key: the old one stops working at once; the new one is shown once'
        : 'Enable SCIM and issue its key (shown once; any earlier key stops working)',
      auth: 'bearer',
      handle: async (ctx) => ({ baseUrl: scimBaseUrl(ctx), token: await (await organization(ctx)).issueScimKey() }),
    }),
  ),
  route({
    method: 'delete',
    path: '/organizations/:oid/scim',
    tag: 'scim',
    summary: 'Disable SCIM; its key stops working',
    auth: 'bearer',
    status: 204,
    handle: async (ctx) => noContent((await organization(ctx)).disableScim()),
  }),
  route<z.infer<typeof s.putDirectoryConfig>>({
    method: 'put',
    path: '/organizations/:oid/directory',
    tag: 'directory sync',
    summary: 'Create or replace the directory connection (the bind password is write-only; omit it to keep the stored one)',
    auth: 'bearer',
    body: s.putDirectoryConfig,
    handle: async (ctx) => (await organization(ctx)).directory.putConfig(ctx.body),
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/directory',
    tag: 'directory sync',
    summary: 'The directory connection, never its password (bindPasswordSet)',
    auth: 'bearer',
    handle: async (ctx) => (await organization(ctx)).directory.getConfig(),
  }),
  route({
    method: 'delete',
    path: '/organizations/:oid/directory',
    tag: 'directory sync',
    summary: 'Delete the directory connection and its schedule (the run history stays)',
    auth: 'bearer',
    status: 204,
    handle: async (ctx) => noContent((await organization(ctx)).directory.deleteConfig()),
  }),
  route({
    method: 'post',
    path: '/organizations/:oid/directory/test',
    tag: 'directory sync',
    summary:
      'Read the directory as a sync would and report counts, samples and problems; changes nothing. ' +
      'A directory that cannot be read answers 200 {ok: false, failure, message}',
    auth: 'bearer',
    handle: async (ctx) => {
      // Reading the configuration checks the caller's rights, the plan and that one exists.
      const org = await organization(ctx);
      await org.directory.getConfig();
      return ctx.directory.test(org.id);
    },
  }),
  route<z.infer<typeof s.startDirectorySync>>({
    method: 'post',
    path: '/organizations/:oid/directory/sync',
    tag: 'directory sync',
    summary: 'Start a sync now (202 with the run); one already queued or running answers 409',
    auth: 'bearer',
    body: s.startDirectorySync,
    status: 202,
    handle: async (ctx) => {
      const org = await organization(ctx);
      const run = await org.directory.startRun({ dryRun: ctx.body?.dryRun ?? false, trigger: 'manual' });
      ctx.directory.kick({ organizationId: org.id, runId: run.id });
      return run;
    },
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/directory/runs',
    tag: 'directory sync',
    summary: 'The newest 50 sync runs (read one run for the planned changes of a dry run)',
    auth: 'bearer',
    handle: async (ctx) => list((await organization(ctx)).directory.listRuns()),
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/directory/runs/:rid',
    tag: 'directory sync',
    summary: 'One sync run: status, times, counts, problems, progress while running, changes of a dry run',
    auth: 'bearer',
    handle: async (ctx) => (await organization(ctx)).directory.getRun(ctx.params.rid!),
  }),
  route<z.infer<typeof ssoConfigBody>>({
    method: 'put',
    path: '/organizations/:oid/sso',
    tag: 'sso',
    summary:
      'Create or replace the SSO configuration (OIDC or SAML; the client secret is write-only, omit it to keep the stored one). ' +
      'Turning SSO on or off is an event',
    auth: 'bearer',
    body: ssoConfigBody,
    handle: async (ctx) => {
      const org = await organization(ctx);
      await org.sso.authorize();
      const config = await org.sso.putConfig(await ctx.sso.resolveConfig(ctx.body));
      ctx.sso.evict(org.id);
      return config;
    },
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/sso',
    tag: 'sso',
    summary: 'The SSO configuration, never the client secret (clientSecretSet), with the SP values to give the IdP',
    auth: 'bearer',
    handle: async (ctx) => (await organization(ctx)).sso.getConfig(),
  }),
  route({
    method: 'delete',
    path: '/organizations/:oid/sso',
    tag: 'sso',
    summary: 'Delete the SSO configuration; sign-in through SSO stops at once',
    auth: 'bearer',
    status: 204,
    handle: async (ctx) => {
      const org = await organization(ctx);
      await org.sso.deleteConfig();
      ctx.sso.evict(org.id);
      return undefined;
    },
  }),
  route<z.infer<typeof s.addDomain>>({
    method: 'post',
    path: '/organizations/:oid/domains',
    tag: 'sso',
    summary: 'Claim a domain; publish the returned TXT record, then verify',
    auth: 'bearer',
    body: s.addDomain,
    status: 201,
    handle: async (ctx) => (await organization(ctx)).domains.add(ctx.body.domain),
  }),
  route({
    method: 'get',
    path: '/organizations/:oid/domains',
    tag: 'sso',
    summary: 'The claimed domains and whether each is verified',
    auth: 'bearer',
    handle: async (ctx) => list((await organization(ctx)).domains.list()),
  }),
  route({
    method: 'post',
    path: '/organizations/:oid/domains/:did/verify',
    tag: 'sso',
    summary: 'Look the TXT record up in DNS now; a verified domain turns singleOrg on',
    auth: 'bearer',
    handle: async (ctx) => (await organization(ctx)).domains.verify(ctx.params.did!),
  }),
  route({
    method: 'delete',
    path: '/organizations/:oid/domains/:did',
    tag: 'sso',
    summary: 'Release a claimed domain',
    auth: 'bearer',
    status: 204,
    handle: async (ctx) => noContent((await organization(ctx)).domains.remove(ctx.params.did!)),
  }),
  route<undefined, z.infer<typeof s.eventQuery>>({
    method: 'get',
    path: '/organizations/:oid/events',
    tag: 'events',
    summary: "The organization's events, newest first, 50 a page",
    auth: 'bearer',
    query: s.eventQuery,
    handle: async (ctx) => (await organization(ctx)).events(ctx.query),
  }),
];

export const apiRoutes: Route[] = [...accountRoutes, ...providerRoutes, ...organizationRoutes];

export type { Engine, Principal };
