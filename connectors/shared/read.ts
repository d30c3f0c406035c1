/**
 * One full read of a directory over a bound client: users, the disabled ones, groups, and their
 * members resolved to external ids. Paged one page at a time (constant memory), explicit attribute
 * lists, an explicit time limit; referrals ignored. Everything or a `DirectoryReadError`.
 */
import type { Client, Entry } from 'ldapts';
import type { ConnectionSettings } from '../../src/sync/settings.js';
import { DirectoryReadError, type DirectoryGroup, type DirectorySnapshot, type DirectoryUser, type ReadProgress } from '../../src/sync/source.js';
import { firstRdnValue, normalizeDn as normalize } from './dn.js';
import { bufferAttributes, externalIdOf, firstString, stringsOf } from './entries.js';
import { closeQuietly } from './connection.js';
import { toReadError } from './errors.js';
import { rangeOf, readAllRanges } from './range.js';

/** How one directory kind differs from another inside the common read. */
export interface Dialect {
  /** AD answers `member;range=0-1499` for big groups; LDAP servers never do. */
  rangeRetrieval: boolean;
}

export interface ReadOptions {
  onProgress?: ((progress: ReadProgress) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/** Warnings past this many are counted, not listed: one bad group must not flood a run record. */
export const MAX_WARNINGS = 1000;

class Warnings {
  readonly list: string[] = [];
  private dropped = 0;
  add(message: string) {
    if (this.list.length < MAX_WARNINGS) this.list.push(message);
    else this.dropped++;
  }
  done(): string[] {
    return this.dropped ? [...this.list, `… and ${this.dropped} more warnings`] : this.list;
  }
}

interface SearchSpec {
  target: string;
  base: string;
  filter: string;
  attributes: string[];
  explicitBufferAttributes: string[];
}

/** Strips the optional `#'0101'B` UID of a `uniqueMember` value (nameAndOptionalUID, RFC 4517 §3.3.21). */
function stripOptionalUid(value: string): string {
  return value.endsWith("'B") ? value.replace(/#'[01]*'B$/, '') : value;
}

export async function readSnapshot({
  client,
  settings,
  dialect,
  options = {},
  openClient,
}: {
  client: Client;
  settings: ConnectionSettings;
  dialect: Dialect;
  options?: ReadOptions;
  /**
   * Opens a second bound connection for the disabled users' search, which then runs beside the
   * users' and groups' searches (a server keeps one paged search per connection). Without it the
   * searches run one after the other on `client`.
   */
  openClient?: () => Promise<Client>;
}): Promise<DirectorySnapshot> {
  const { signal, onProgress } = options;
  const progress: ReadProgress = { users: 0, groups: 0 };
  const warnings = new Warnings();
  const fail = (error: unknown, target: string) =>
    signal?.aborted
      ? new DirectoryReadError('interrupted', `the read of ${target} from ${settings.url} was aborted`, { cause: error })
      : toReadError(error, { phase: 'read', url: settings.url, bindDn: settings.bindDn, bindPassword: settings.bindPassword, target });

  /** Each entry of a paged search, page by page; throws on anything short of a complete result. */
  async function* entries(spec: SearchSpec, on: Client = client): AsyncGenerator<Entry[]> {
    // ldapts reconnects on its own when a search starts on a dropped connection: unbound and
    // without StartTLS. A connection that is gone means the read is over.
    if (!on.isConnected) throw fail(new Error('Socket connection not established'), spec.target);
    try {
      const pages = on.searchPaginated(spec.base, {
        scope: 'sub',
        filter: spec.filter,
        attributes: spec.attributes,
        explicitBufferAttributes: spec.explicitBufferAttributes,
        timeLimit: settings.timeLimitSeconds,
        derefAliases: 'never',
        paged: { pageSize: Math.min(settings.pageSize, 1000) },
      });
      // One page ahead: the next page is asked for as soon as a page arrives, so the server builds
      // it while this process decodes the current one (two pages in memory at most, never more).
      let next = pages.next();
      try {
        for (;;) {
          const result = await next;
          if (result.done) break;
          if (signal?.aborted) throw signal.reason;
          next = pages.next();
          next.catch(() => undefined); // awaited on the next turn; a failure is thrown there
          // Search continuation references (referrals from a domain root) are not entries: ignored.
          yield result.value.searchEntries;
        }
      } finally {
        // A read that stops early leaves the generator to end with the connection.
        void pages.return(undefined).catch(() => undefined);
      }
    } catch (error) {
      throw fail(error, spec.target);
    }
  }

  let side: Client | undefined;
  const abort = () => {
    void client.unbind().catch(() => undefined);
    void side?.unbind().catch(() => undefined);
  };
  signal?.addEventListener('abort', abort, { once: true });
  try {
    if (signal?.aborted) throw fail(signal.reason, 'the directory');
    const { users: userSettings, groups: groupSettings } = settings;

    // Member DNs are matched by their normal form (`normalizeDn`). Most are written exactly as the
    // entry's own DN or as its normal form, so an exact lookup comes first: it answers the same as
    // normalising (the normal form of a normal form is itself) and builds no string.
    let normalizeDn: ((dn: string) => string | null) | undefined = (dn) => {
      const normal = normalize(dn);
      // A normal form is built by concatenation (a rope); reading one character flattens it in place.
      normal?.charCodeAt(0);
      return normal;
    };

    // Users.
    const readsMemberUid = groupSettings?.memberAttributes.includes('memberUid') ?? false;
    const userIdBuffers = bufferAttributes(userSettings.externalIdAttribute, userSettings.externalIdFormat);
    const users: DirectoryUser[] = [];
    /** Users by the normal form of their DN. */
    let userByDn: Map<string, string> | undefined = new Map<string, string>();
    /** Users by their DN as the server wrote it, for the DNs that are not in normal form already. */
    let userByWrittenDn: Map<string, string> | undefined = new Map<string, string>();
    /** Users' uid values and their external ids, in order; a map of them is built for the first memberUid value. */
    let uidValues: string[] | undefined = [];
    let uidOwners: string[] | undefined = [];
    let userByUid: Map<string, string> | undefined;
    const userOfUid = (uid: string): string | undefined => {
      if (!userByUid) {
        userByUid = new Map<string, string>();
        for (let i = 0; i < uidValues!.length; i++) userByUid.set(uidValues![i]!.trim().toLowerCase(), uidOwners![i]!);
        uidValues = uidOwners = undefined;
      }
      return userByUid.get(uid.trim().toLowerCase());
    };
    let seenUserIds: Set<string> | undefined = new Set<string>();

    // Disabled users: a second paged search reading only the id, so the rule stays a plain filter
    // (AD's userAccountControl bit, FreeIPA's nsAccountLock, any rule an LDAP admin writes). Given
    // `openClient`, it runs on a second connection (OpenLDAP keeps one paged search per connection)
    // beside the users' and groups' searches, so the server evaluates the filter while this process
    // decodes the other pages; without it, after the users' search on `client`.
    const disabledFilter = userSettings.disabledFilter;
    const readDisabled = async (on: Client) => {
      const disabled = new Set<string>();
      for await (const page of entries(
        {
          target: `disabled users under "${userSettings.baseDn}"`,
          base: userSettings.baseDn,
          filter: `(&${userSettings.filter}${disabledFilter})`,
          attributes: [userSettings.externalIdAttribute],
          explicitBufferAttributes: userIdBuffers,
        },
        on,
      )) {
        for (const entry of page) {
          const externalId = externalIdOf(entry, userSettings.externalIdAttribute, userSettings.externalIdFormat);
          if (externalId !== null) disabled.add(externalId);
        }
      }
      return disabled;
    };
    let disabledIds =
      disabledFilter && openClient
        ? (async () => {
            side = await openClient();
            try {
              if (signal?.aborted) throw fail(signal.reason, 'the directory');
              return await readDisabled(side);
            } finally {
              await closeQuietly(side);
            }
          })()
        : undefined;
    // Awaited (and its failure thrown) once the users and groups are read; never left unhandled.
    disabledIds?.catch(() => undefined);
    const userTarget = `users under "${userSettings.baseDn}"`;
    for await (const page of entries({
      target: userTarget,
      base: userSettings.baseDn,
      filter: userSettings.filter,
      attributes: [
        ...new Set([
          userSettings.externalIdAttribute,
          userSettings.emailAttribute,
          userSettings.nameAttribute,
          ...(readsMemberUid ? [userSettings.uidAttribute] : []),
        ]),
      ],
      explicitBufferAttributes: userIdBuffers,
    })) {
      for (const entry of page) {
        const externalId = externalIdOf(entry, userSettings.externalIdAttribute, userSettings.externalIdFormat);
        if (externalId === null) {
          warnings.add(`user "${entry.dn}" has no usable ${userSettings.externalIdAttribute}: skipped`);
          continue;
        }
        if (seenUserIds.has(externalId)) {
          warnings.add(`user "${entry.dn}" repeats ${userSettings.externalIdAttribute} ${externalId}: skipped`);
          continue;
        }
        seenUserIds.add(externalId);
        const dn = normalizeDn(entry.dn) ?? entry.dn.toLowerCase();
        const email = firstString(entry, userSettings.emailAttribute)?.toLowerCase() ?? null;
        users.push({ externalId, dn, email, name: firstString(entry, userSettings.nameAttribute), disabled: false });
        userByDn.set(dn, externalId);
        if (dn !== entry.dn) userByWrittenDn.set(entry.dn, externalId);
        if (readsMemberUid) {
          for (const uid of stringsOf(entry, userSettings.uidAttribute)) {
            uidValues!.push(uid);
            uidOwners!.push(externalId);
          }
        }
      }
      progress.users = users.length;
      onProgress?.({ ...progress });
    }
    seenUserIds = undefined;
    if (disabledFilter && !disabledIds) disabledIds = readDisabled(client);

    const applyDisabled = async () => {
      if (!disabledIds) return;
      const disabled = await disabledIds;
      for (const user of users) user.disabled = disabled.has(user.externalId);
    };

    if (!groupSettings) {
      await applyDisabled();
      return { users, groups: [], warnings: warnings.done() };
    }

    // Groups. Every user is read by now, so member DNs naming users and memberUid values resolve as
    // each page arrives; only member DNs naming no user wait (as nested groups) for all the groups.
    // The ids collect in sets in the order the members are listed: DN members (the first range, then
    // the rest), then memberUid members.
    interface PendingGroup {
      group: DirectoryGroup;
      userIds: Set<string>;
      /** Member DNs that name no user, in order: (value as listed, normal form or null). */
      unresolved: [value: string, dn: string | null][];
      /** memberUid values, kept only until the DN members are complete (a ranged group). */
      memberUids: string[];
      /** memberUid values that name no user, in order. */
      unresolvedUids: string[];
    }
    const pendingGroups: PendingGroup[] = [];
    let groupByDn: Map<string, string> | undefined = new Map<string, string>();
    const ranged: { pending: PendingGroup; entry: Entry }[] = [];
    const dnAttributes = groupSettings.memberAttributes.filter((a) => a !== 'memberUid');
    const groupTarget = `groups under "${groupSettings.baseDn}"`;

    const resolveMemberDns = (pending: PendingGroup, values: string[]) => {
      for (const value of values) {
        const written = stripOptionalUid(value);
        const exact = userByDn!.get(written) ?? userByWrittenDn!.get(written);
        if (exact !== undefined) {
          pending.userIds.add(exact);
          continue;
        }
        const dn = normalizeDn!(written);
        const user = dn === null ? undefined : userByDn!.get(dn);
        if (user !== undefined) pending.userIds.add(user);
        else pending.unresolved.push([value, dn]);
      }
    };
    const resolveMemberUids = (pending: PendingGroup) => {
      for (const uid of pending.memberUids) {
        const user = userOfUid(uid);
        if (user !== undefined) pending.userIds.add(user);
        else pending.unresolvedUids.push(uid); // warned about at the end, in the order of the groups
      }
      pending.memberUids = [];
    };

    for await (const page of entries({
      target: groupTarget,
      base: groupSettings.baseDn,
      filter: groupSettings.filter,
      attributes: [...new Set([groupSettings.externalIdAttribute, groupSettings.nameAttribute, ...groupSettings.memberAttributes])],
      explicitBufferAttributes: bufferAttributes(groupSettings.externalIdAttribute, groupSettings.externalIdFormat),
    })) {
      for (const entry of page) {
        const externalId = externalIdOf(entry, groupSettings.externalIdAttribute, groupSettings.externalIdFormat);
        if (externalId === null) {
          warnings.add(`group "${entry.dn}" has no usable ${groupSettings.externalIdAttribute}: skipped`);
          continue;
        }
        const dn = normalizeDn(entry.dn) ?? entry.dn.toLowerCase();
        const name = firstString(entry, groupSettings.nameAttribute) ?? firstRdnValue(entry.dn) ?? entry.dn;
        const pending: PendingGroup = {
          group: { externalId, dn, name, memberExternalIds: [], groupExternalIds: [] },
          userIds: new Set(),
          unresolved: [],
          memberUids: readsMemberUid ? stringsOf(entry, 'memberUid') : [],
          unresolvedUids: [],
        };
        pendingGroups.push(pending);
        groupByDn.set(dn, externalId);
        for (const attribute of dnAttributes) resolveMemberDns(pending, stringsOf(entry, attribute));
        if (dialect.rangeRetrieval && dnAttributes.some((attribute) => rangeOf(entry, attribute) !== null)) ranged.push({ pending, entry });
        else resolveMemberUids(pending);
      }
      progress.groups = pendingGroups.length;
      onProgress?.({ ...progress });
    }

    // Range retrieval after the paged searches (the disabled users' too), so no request interleaves
    // with their cookies.
    if (ranged.length > 0) await disabledIds;
    for (const { pending, entry } of ranged) {
      for (const attribute of dnAttributes) {
        const all = await readAllRanges({
          entry,
          attribute,
          readEntry: async (dn, attributes) => {
            if (!client.isConnected) throw fail(new Error('Socket connection not established'), `members of "${dn}"`);
            if (signal?.aborted) throw fail(signal.reason, `members of "${dn}"`);
            try {
              const result = await client.search(dn, { scope: 'base', filter: '(objectClass=*)', attributes, timeLimit: settings.timeLimitSeconds });
              return result.searchEntries[0];
            } catch (error) {
              throw fail(error, `members of "${dn}"`);
            }
          },
        }).catch((error: unknown) => {
          throw fail(error, `members of "${entry.dn}"`);
        });
        if (all !== null) resolveMemberDns(pending, all);
      }
      resolveMemberUids(pending);
    }
    ranged.length = 0;
    // The users' maps and the cache of normal forms are done with: let them go before the last pass.
    normalizeDn = undefined;
    userByDn = undefined;
    userByWrittenDn = undefined;
    userByUid = undefined;
    uidValues = uidOwners = undefined;

    // Nested groups: member DNs that named no user name a group read, or nothing (a warning).
    const groups: DirectoryGroup[] = [];
    for (const { group, userIds, unresolved, unresolvedUids } of pendingGroups) {
      const groupIds = new Set<string>();
      for (const [value, dn] of unresolved) {
        const nested = dn === null ? undefined : groupByDn.get(dn);
        if (nested !== undefined) groupIds.add(nested);
        else warnings.add(`group "${group.name}" lists member "${value}", which is neither a user nor a group read (outside the base DN or filter?)`);
      }
      for (const uid of unresolvedUids) warnings.add(`group "${group.name}" lists memberUid "${uid}", which names no user read`);
      group.memberExternalIds = [...userIds];
      group.groupExternalIds = [...groupIds];
      groups.push(group);
    }
    pendingGroups.length = 0;
    groupByDn = undefined;
    await applyDisabled();
    return { users, groups, warnings: warnings.done() };
  } finally {
    signal?.removeEventListener('abort', abort);
    // A read that failed leaves the side connection's search running: end it.
    if (side) await closeQuietly(side);
  }
}
