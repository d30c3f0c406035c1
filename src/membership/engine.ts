/**
 * The membership engine's entry point. Adapters authenticate a token, then ask for a capability
 * handle (`provider(id, principal)`, `organization(id, principal)`) whose every operation is
 * scoped to that tenant and runs in one transaction with its events and mails.
 */
import {
  acceptInvitation,
  authenticate,
  describeUser,
  ensureSystemToken,
  issueApiToken,
  listApiTokens,
  requireSsoAllowsTokens,
  revokeApiToken,
  rotateSystemToken,
} from './accounts.js';
import type { Principal } from './actor.js';
import * as collections from './collections.js';
import { inTransaction, pipelined, type EngineDeps, type Tx } from './context.js';
import * as directoryConfig from './directory-config.js';
import * as directorySync from './directory-sync.js';
import * as directoryRuns from './directory-runs.js';
import * as domains from './domains.js';
import { InvalidStatus, PermissionDenied } from './errors.js';
import { listEvents, type EventQuery } from './events.js';
import { listOutbox } from './mail.js';
import * as groups from './groups.js';
import type { OrganizationId, ProviderId, UserId } from './ids.js';
import * as members from './members.js';
import { requireAdministrator, requireFeature, requirePermission, type OrganizationCaller } from './members.rules.js';
import { loadOrganization, recheckOrganizationCaller, resolveOrganizationCaller } from './organizations.js';
import { lockOrganization, type LockMode } from './organization-state.js';
import * as policies from './policies.js';
import * as providers from './providers.js';
import { createRateLimiter, pruneRateLimits, type RateLimitOptions } from './rate-limits.js';
import * as scimKeys from './scim-keys.js';
import * as search from './search.js';
import * as ssoConfig from './sso-config.js';
import * as ssoSignIn from './sso-signin.js';

export type Engine = ReturnType<typeof createEngine>;
export type ProviderHandle = ReturnType<typeof providerHandle>;
export type OrganizationHandle = ReturnType<typeof organizationHandle>;

/**
 * How a handle reads its caller's rights again inside a write transaction, once the tenant's row
 * is locked (in any mode): a demotion committed while the request waited for the lock applies to
 * it. Every change of anyone's rights (revoking, removing or re-roling a confirmed member, a SCIM
 * key issued or disabled) holds the row in `update` mode, which conflicts with every mode, so the
 * rights read after the lock stay true until the request commits.
 */
type Recheck = (tx: Tx) => Promise<OrganizationCaller>;

interface Grant {
  organizationId: OrganizationId;
  caller: OrganizationCaller;
  recheck: Recheck;
}

export function createEngine(deps: EngineDeps, options: { systemToken?: string | undefined } = {}) {
  // The organization handles this engine issued, with what they grant: `atomically` accepts only
  // these, so an adapter cannot make itself a handle from an id and a caller of its choosing.
  const grants = new WeakMap<object, Grant>();
  const issue = (grant: Grant, within?: Tx) => {
    const handle = organizationHandle(deps, grant, within);
    grants.set(handle, grant);
    return handle;
  };
  const requireSystem = (principal: Principal) => {
    if (principal.kind !== 'system') throw new PermissionDenied('This needs the operator token');
  };
  const requireUser = (principal: Principal): UserId => {
    if (principal.kind !== 'user') throw new PermissionDenied('This needs a personal token');
    return principal.userId;
  };
  /** Personal tokens are the account's, beyond any organization: a session from SSO, scoped to one, does not manage them. */
  const requirePersonal = (principal: Principal): UserId => {
    const userId = requireUser(principal);
    if (principal.kind === 'user' && principal.organizationId) {
      throw new PermissionDenied('A session from SSO cannot manage personal tokens');
    }
    return userId;
  };
  return {
    /** The public base URL, for links an adapter renders (e.g. the SCIM base URL). */
    publicUrl: deps.publicUrl,
    /** Generates the operator token on first start when none is configured; returns it once. */
    ensureSystemToken: () => ensureSystemToken(deps, options.systemToken),
    /**
     * Replaces the stored operator token and returns the new one once (the operator CLI). Refused
     * while a token is configured: that one is the operator token and the stored one is unused.
     */
    rotateSystemToken: async () => {
      if (options.systemToken) throw new InvalidStatus('SYSTEM_ADMIN_TOKEN is set and is the operator token; change it there instead');
      return rotateSystemToken(deps);
    },
    authenticate: (token: string) => authenticate(deps, options.systemToken, token),
    /**
     * A rate limiter (rate-limiter-flexible) whose counters live in the database, so every
     * instance sharing it draws on one budget; it reads the engine's clock.
     */
    rateLimiter: (limit: RateLimitOptions) => createRateLimiter(deps, limit),
    /** Deletes rate-limit counters whose window has passed (main runs this on a timer). */
    pruneRateLimits: () => pruneRateLimits(deps.db, deps.clock()),

    createProvider: async (principal: Principal, input: { name: string; adminEmail: string }) => {
      requireSystem(principal);
      return inTransaction(deps, (tx) => providers.createProvider(tx, input));
    },
    listProviders: async (principal: Principal) => {
      requireSystem(principal);
      return providers.listProviders(deps.db);
    },
    setProviderEnabled: async (principal: Principal, providerId: string, enabled: boolean) => {
      requireSystem(principal);
      await providers.resolveProviderCaller(deps.db, providerId, principal);
      return inTransaction(deps, (tx) => providers.setProviderEnabled(tx, providerId as ProviderId, enabled));
    },
    /** Operator: the newest mails, delivered or not (the only way to read them without SMTP). */
    listOutbox: async (principal: Principal, query: { recipient?: string | undefined }) => {
      requireSystem(principal);
      return listOutbox(deps, query);
    },
    completeProviderSetup: (input: { token: string; name?: string | undefined; billingEmail?: string | undefined }) =>
      inTransaction(deps, (tx) => providers.completeProviderSetup(tx, input)),
    acceptInvitation: (input: { token: string; name?: string | undefined }, principal?: Principal) =>
      inTransaction(deps, (tx) =>
        acceptInvitation(tx, { ...input, signedInUserId: principal?.kind === 'user' ? principal.userId : undefined }),
      ),

    /** The signed-in person, with the providers and organizations it belongs to. */
    me: async (principal: Principal) => describeUser(deps.db, requireUser(principal)),
    listTokens: async (principal: Principal) => listApiTokens(deps.db, requirePersonal(principal)),
    createToken: async (principal: Principal, name: string) => {
      const userId = requirePersonal(principal);
      await requireSsoAllowsTokens(deps.db, userId);
      return inTransaction(deps, (tx) => issueApiToken(tx, userId, name));
    },
    revokeToken: async (principal: Principal, tokenId: string) => revokeApiToken(deps.db, requirePersonal(principal), tokenId),

    /** A provider as `principal` may act on it; "not found" for anyone outside it. */
    provider: async (providerId: string, principal: Principal) =>
      providerHandle(deps, providerId as ProviderId, await providers.resolveProviderCaller(deps.db, providerId, principal), principal),

    /** An organization as `principal` may act on it; "not found" for anyone outside it. */
    organization: async (organizationId: string, principal: Principal) =>
      issue({
        organizationId: organizationId as OrganizationId,
        caller: await resolveOrganizationCaller(deps, organizationId, principal),
        recheck: (tx) => recheckOrganizationCaller(tx, organizationId as OrganizationId, principal),
      }),

    /**
     * An organization as its SCIM client acts on it, after checking the organization's SCIM key.
     * The key acts with the rights of the person who issued it.
     */
    organizationByScimKey: async (organizationId: string, token: string) =>
      issue({
        organizationId: organizationId as OrganizationId,
        caller: await scimKeys.checkScimKey(deps.db, organizationId, token),
        // A key rotated or disabled while the request waited for the lock no longer acts.
        recheck: (tx) => scimKeys.checkScimKey(tx.db, organizationId, token),
      }),

    /**
     * The directory sync of an organization, acting as the system actor `directorySync` with admin
     * rights (so never on owners). Refuses a disabled organization and a plan without directory sync.
     */
    directorySync: (organizationId: string) => directorySync.openDirectorySync(deps, organizationId),

    /**
     * Signing in through an organization's IdP, for the SSO adapter: it verifies the protocol, the
     * engine keeps the transactions, the replay cache, the membership and the session.
     */
    signIn: {
      /** The enabled configuration of the organization `identifier` names, with its secret; undefined: no SSO there. */
      settings: (identifier: string) => ssoConfig.loadSsoSettings(deps.db, deps.publicUrl, deps.encryptionKey, identifier),
      settingsById: (organizationId: string) =>
        ssoConfig.loadSsoSettingsById(deps.db, deps.publicUrl, deps.encryptionKey, organizationId),
      /** The identifier of the organization that verified the domain of `email`. */
      organizationOfEmail: (email: string) => domains.organizationOfEmailDomain(deps.db, email),
      begin: <R extends ssoSignIn.TransactionData>(
        settings: ssoConfig.SsoSettings,
        input: ssoSignIn.BeginInput,
        build: (key: string) => Promise<R>,
      ) => ssoSignIn.beginSignIn(deps, settings, input, build),
      take: (input: Parameters<typeof ssoSignIn.takeSignIn>[1]) => ssoSignIn.takeSignIn(deps, input),
      rememberAssertion: (organizationId: string, assertionId: string, expiresAt: Date) =>
        ssoSignIn.rememberAssertion(deps, organizationId, assertionId, expiresAt),
      complete: (settings: ssoConfig.SsoSettings, identity: ssoSignIn.VerifiedIdentity, options: { returnTo?: string | null }) =>
        ssoSignIn.completeSignIn(deps, settings, identity, options),
      exchangeCode: (code: string) => ssoSignIn.exchangeSignInCode(deps, code),
      /** Deletes expired transactions, replay entries, sessions and codes (main runs this on a timer). */
      prune: () => ssoSignIn.pruneSignIns(deps),
    },

    /** Re-checks the DNS records of verified domains last checked longer ago than `olderThanMs`. */
    recheckDomains: (olderThanMs: number) => domains.recheckDomains(deps, olderThanMs),

    /**
     * Runs `work` with a copy of `org` whose operations share one transaction: all of them apply or
     * none does. The organization row is locked by the first operation that reads or writes, in
     * the mode it needs, and the caller rechecked then; later operations reuse that lock, or take a
     * stronger one. Reading a member locks in `update` mode, so concurrent atomic changes that read
     * a member, apply operations and write it back (a SCIM PATCH or PUT of a User) apply one after
     * another and never lose each other's writes. Creates and group membership changes hold the row
     * shared (`key share`): concurrent ones of one organization overlap (issue 9).
     */
    atomically: async <T>(org: OrganizationHandle, work: (org: OrganizationHandle) => Promise<T>): Promise<T> => {
      const grant = grants.get(org);
      if (!grant) throw new TypeError('atomically takes a handle issued by this engine');
      return inTransaction(deps, async (tx) => work(issue(grant, tx)));
    },
  };
}

function providerHandle(deps: EngineDeps, providerId: ProviderId, caller: providers.ProviderCaller, principal: Principal) {
  /** A change runs with the caller's rights read again after the provider row is locked. */
  const run = <T>(work: (tx: Tx, caller: providers.ProviderCaller) => Promise<T>) =>
    inTransaction(deps, async (tx) => work(tx, await providers.recheckProviderCaller(tx, providerId, principal)));
  return {
    id: providerId,
    caller,
    get: () => providers.getProvider(deps.db, providerId),
    update: (input: Parameters<typeof providers.updateProvider>[3]) =>
      run((tx, caller) => providers.updateProvider(tx, providerId, caller, input)),

    listUsers: async () => {
      providers.requireProviderAdmin(caller);
      return providers.listProviderUsers(deps.db, providerId);
    },
    inviteUsers: (input: { emails: string[]; type: providers.ProviderUserType }) =>
      run((tx, caller) => providers.inviteProviderUsers(tx, providerId, caller, input)),
    confirmUser: (id: string) => run((tx, caller) => providers.confirmProviderUser(tx, providerId, caller, id)),
    reinviteUser: (id: string) => run((tx, caller) => providers.reinviteProviderUser(tx, providerId, caller, id)),
    updateUser: (id: string, input: { type: providers.ProviderUserType }) =>
      run((tx, caller) => providers.updateProviderUser(tx, providerId, caller, id, input)),
    removeUser: (id: string) => run((tx, caller) => providers.removeProviderUser(tx, providerId, caller, id)),

    listClients: () => providers.listClients(deps.db, providerId),
    createClient: (input: providers.CreateClientInput) => run((tx, caller) => providers.createClient(tx, providerId, caller, input)),
    updateClient: (organizationId: string, input: { name?: string | undefined; seats?: number | undefined }) =>
      run((tx, caller) => providers.updateClient(tx, providerId, caller, organizationId, input)),
    unlinkClient: (organizationId: string) => run((tx, caller) => providers.unlinkClient(tx, providerId, caller, organizationId)),

    events: async (query: EventQuery) => {
      providers.requireProviderAdmin(caller);
      return listEvents(deps.db, deps.clock(), { providerId }, query);
    },
  };
}

/**
 * The operations of one organization for one caller. Each runs in its own transaction, unless the
 * handle was made by `atomically`: then every operation shares that transaction.
 */
function organizationHandle(deps: EngineDeps, grant: Grant, within?: Tx) {
  const { organizationId } = grant;
  /** The caller as rechecked in `within`, once its first operation locked the organization. */
  let rechecked: OrganizationCaller | undefined;
  /**
   * Locks the organization row in `tx` in the mode the operation needs (see `LockMode`; a member
   * change decides by its target, `members.targetLock`) and answers the caller's rights read
   * after it. In `within`, the first operation locks and rechecks; the others reuse both, and
   * take a stronger lock if they need one. The operation then asks for the same lock again,
   * which costs no query (`lockOrganization` knows what its transaction holds).
   */
  const enter = async (tx: Tx, lock: LockMode | ((tx: Tx) => Promise<LockMode>)): Promise<OrganizationCaller> => {
    const mode = typeof lock === 'function' ? await lock(tx) : lock;
    if (tx === within && rechecked) {
      await lockOrganization(tx, organizationId, mode);
      return rechecked;
    }
    // The recheck is issued right behind the lock, without waiting for it: a transaction's
    // statements run in the order issued, so the server reads the rights once the lock is granted
    // (and with a snapshot taken then), and the request saves a round trip.
    const locked = lockOrganization(tx, organizationId, mode);
    const recheck = grant.recheck(tx);
    await pipelined([locked, recheck]);
    const caller = await recheck;
    if (tx === within) rechecked = caller;
    return caller;
  };
  /** A change, in its own transaction or the one `atomically` opened, with the caller's rights read after the lock. */
  const run = <T>(work: (tx: Tx, caller: OrganizationCaller) => Promise<T>, lock: LockMode | ((tx: Tx) => Promise<LockMode>) = 'update') =>
    within ? enter(within, lock).then((caller) => work(within, caller)) : inTransaction(deps, async (tx) => work(tx, await enter(tx, lock)));
  /** The lock a change of the member `id` needs: `update` only when it is confirmed. */
  const target = (id: string) => (tx: Tx) => members.targetLockOf(tx.db, organizationId, id);
  /** The caller as far as this handle knows: rechecked, inside `atomically` once an operation locked. */
  const current = () => rechecked ?? grant.caller;
  const readable = () => requireAdministrator(current());
  const db = within?.db ?? deps.db;
  return {
    id: organizationId,
    caller: grant.caller,
    get: () => loadOrganization(db, organizationId),


    listMembers: async (query: Parameters<typeof members.listMembers>[2]) => {
      readable();
      return members.listMembers(db, organizationId, query);
    },
    /**
     * Inside `atomically`, reading a member locks the organization in `update` mode first: what is
     * read here is what a change written back later in the transaction is computed from.
     */
    getMember: async (memberId: string) => {
      if (within) await enter(within, 'update');
      readable();
      return members.withAccess(db, members.renderMember(await members.loadMember(db, organizationId, memberId)));
    },
    inviteMembers: (input: members.InviteMembersInput) =>
      run((tx, caller) => members.inviteMembers(tx, organizationId, caller, input), 'key share'),
    confirmMember: (id: string) => run((tx, caller) => members.confirmMember(tx, organizationId, caller, id), target(id)),
    revokeMember: (id: string) => run((tx, caller) => members.revokeMember(tx, organizationId, caller, id), target(id)),
    restoreMember: (id: string) => run((tx, caller) => members.restoreMember(tx, organizationId, caller, id), target(id)),
    reinviteMember: (id: string) => run((tx, caller) => members.reinviteMember(tx, organizationId, caller, id), target(id)),
    removeMember: (id: string) => run((tx, caller) => members.removeMember(tx, organizationId, caller, id), target(id)),
    updateMember: (id: string, input: members.UpdateMemberInput) =>
      run((tx, caller) => members.updateMember(tx, organizationId, caller, id, input), target(id)),

    listGroups: async () => {
      readable();
      return groups.listGroups(db, organizationId);
    },
    /**
     * The group with its members and collections; inside `atomically`, its own fields only (after
     * taking the shared lock): a change is computed from those, and a PATCH adding one member to
     * a group of 100,000 must not read them all (issue 9). `membersOfGroups` reads members.
     */
    getGroup: async (id: string) => {
      if (within) {
        await enter(within, 'key share');
        readable();
        return groups.getGroupFields(db, organizationId, id);
      }
      readable();
      return groups.getGroup(db, organizationId, id);
    },
    createGroup: (input: groups.GroupInput) => run((tx, caller) => groups.createGroup(tx, organizationId, caller, input), 'key share'),
    updateGroup: (id: string, input: Partial<groups.GroupInput>) =>
      run((tx, caller) => groups.updateGroup(tx, organizationId, caller, id, input), 'key share'),
    changeGroupMembers: (id: string, change: { add?: string[]; remove?: string[] }) =>
      run((tx, caller) => groups.changeGroupMembers(tx, organizationId, caller, id, change), 'key share'),
    deleteGroup: (id: string) => run((tx, caller) => groups.deleteGroup(tx, organizationId, caller, id), 'key share'),

    listCollections: async () => {
      readable();
      return collections.listCollections(db, organizationId);
    },
    getCollection: async (id: string) => {
      readable();
      return collections.getCollection(db, organizationId, id);
    },
    createCollection: (input: { name: string; externalId?: string | null | undefined }) =>
      run((tx, caller) => collections.createCollection(tx, organizationId, caller, input)),
    updateCollection: (id: string, input: { name?: string | undefined; externalId?: string | null | undefined }) =>
      run((tx, caller) => collections.updateCollection(tx, organizationId, caller, id, input)),
    deleteCollection: (id: string) => run((tx, caller) => collections.deleteCollection(tx, organizationId, caller, id)),

    listPolicies: async () => {
      requirePermission(current(), 'managePolicies');
      requireFeature((await loadOrganization(db, organizationId)).plan, 'policies');
      return policies.listPolicies(db, organizationId);
    },
    putPolicy: (input: { type: string; enabled: boolean; data?: unknown }) =>
      run((tx, caller) => policies.putPolicy(tx, organizationId, caller, input)),

    /** Members matching a filter, one page in creation order, with the total (SCIM). */
    searchMembers: async (
      filter: search.Filter<search.MemberAttribute> | undefined,
      page: search.Page,
      options: { withGroups?: boolean } = {},
    ) => {
      readable();
      return search.searchMembers(db, organizationId, filter, page, options);
    },
    searchGroups: async (filter: search.Filter<search.GroupAttribute> | undefined, page: search.Page) => {
      readable();
      return search.searchGroups(db, organizationId, filter, page);
    },
    membersOfGroups: async (groupIds: string[]) => {
      readable();
      return search.membersOfGroups(db, organizationId, groupIds);
    },
    groupsOfMembers: async (memberIds: string[]) => {
      readable();
      return search.groupsOfMembers(db, organizationId, memberIds);
    },

    scimStatus: async () => {
      requirePermission(current(), 'manageScim');
      return scimKeys.scimStatus(db, organizationId);
    },
    /** Enables SCIM or rotates its key; the new key is returned once. */
    issueScimKey: (mode: 'enable' | 'rotate') => run((tx, caller) => scimKeys.issueScimKey(tx, organizationId, caller, mode)),
    disableScim: () => run((tx, caller) => scimKeys.disableScim(tx, organizationId, caller)),

    /** The organization's directory sync: its configuration and its runs. */
    directory: {
      /** Creates or replaces the configuration; the bind password is sealed, and kept when omitted. */
      putConfig: (input: directoryConfig.DirectoryConfigInput) =>
        run((tx, caller) => directoryConfig.putDirectoryConfig(tx, organizationId, caller, input)),
      /** The configuration, never its password (`bindPasswordSet: true`). */
      getConfig: () => directoryConfig.getDirectoryConfig(db, organizationId, current()),
      deleteConfig: () => run((tx, caller) => directoryConfig.deleteDirectoryConfig(tx, organizationId, caller)),
      /** Queues a sync run; a run already queued or running is a Conflict. The runner executes it. */
      startRun: (input: { dryRun: boolean; trigger: directoryRuns.DirectoryRunTrigger }) =>
        run((tx, caller) => directoryRuns.startDirectoryRun(tx, organizationId, caller, input)),
      /** The newest runs, without the planned changes of dry runs (read one run for those). */
      listRuns: () => directoryRuns.listDirectoryRuns(db, organizationId, current()),
      getRun: (runId: string) => directoryRuns.getDirectoryRun(db, organizationId, current(), runId),
    },

    /** Single sign-on: the configuration (its client secret sealed, never returned). */
    sso: {
      /** Refuses a caller without manageSso or a plan without SSO, before an adapter does any work (e.g. fetching metadata). */
      authorize: async () => {
        requirePermission(current(), 'manageSso');
        requireFeature((await loadOrganization(db, organizationId)).plan, 'sso');
      },
      putConfig: (input: ssoConfig.SsoConfigInput) => run((tx, caller) => ssoConfig.putSsoConfig(tx, organizationId, caller, input)),
      getConfig: () => ssoConfig.getSsoConfig(db, deps.publicUrl, organizationId, current()),
      deleteConfig: () => run((tx, caller) => ssoConfig.deleteSsoConfig(tx, organizationId, caller)),
    },

    /** Claimed domains and their DNS verification. */
    domains: {
      add: (domain: string) => run((tx, caller) => domains.addDomain(tx, organizationId, caller, domain)),
      list: () => domains.listDomains(db, organizationId, current()),
      /** Looks the TXT record up (outside any transaction), then records the outcome. */
      verify: (id: string) => domains.verifyDomain(deps, organizationId, current(), id),
      remove: (id: string) => run((tx, caller) => domains.removeDomain(tx, organizationId, caller, id)),
    },

    events: async (query: EventQuery) => {
      requirePermission(current(), 'accessEventLogs');
      requireFeature((await loadOrganization(db, organizationId)).plan, 'events');
      return listEvents(db, deps.clock(), { organizationId }, query);
    },
  };
}
