/**
 * Nested groups, flattened: a group's members are its direct users plus the users of every group
 * reachable through `groupExternalIds`. Cycles are legal in LDAP and AD (directory-notes.md,
 * "Membership"), so the walk keeps a visited set and terminates on any graph.
 */
import type { DirectoryGroup } from './source.js';

/** Per group external id, the external ids of every user reachable from it (direct or nested). */
export function flattenGroups(
  groups: readonly Pick<DirectoryGroup, 'externalId' | 'memberExternalIds' | 'groupExternalIds'>[],
): Map<string, Set<string>> {
  const byId = new Map(groups.map((group) => [group.externalId, group]));
  const flattened = new Map<string, Set<string>>();
  for (const group of groups) {
    const users = new Set<string>();
    const visited = new Set<string>([group.externalId]);
    const pending = [group.externalId];
    for (let id = pending.pop(); id !== undefined; id = pending.pop()) {
      const current = byId.get(id);
      if (!current) continue; // a nested group outside the groups read: nothing to add
      for (const user of current.memberExternalIds) users.add(user);
      for (const nested of current.groupExternalIds) {
        if (!visited.has(nested)) {
          visited.add(nested);
          pending.push(nested);
        }
      }
    }
    flattened.set(group.externalId, users);
  }
  return flattened;
}
