import { describe, expect, it } from 'vitest';
import { flattenGroups } from '../../src/sync/flatten.js';

const group = (externalId: string, memberExternalIds: string[], groupExternalIds: string[] = []) => ({ externalId, memberExternalIds, groupExternalIds });

describe('flattenGroups', () => {
  it('gives each group its direct users plus those of every group nested below it', () => {
    const flat = flattenGroups([group('all', ['u1'], ['eng']), group('eng', ['u2'], ['ops']), group('ops', ['u3'])]);
    expect(flat.get('all')).toEqual(new Set(['u1', 'u2', 'u3']));
    expect(flat.get('eng')).toEqual(new Set(['u2', 'u3']));
    expect(flat.get('ops')).toEqual(new Set(['u3']));
  });

  it('terminates on cycles and gives every group in a cycle the users of the whole cycle', () => {
    const flat = flattenGroups([group('a', ['u1'], ['b']), group('b', ['u2'], ['c']), group('c', ['u3'], ['a']), group('self', ['u4'], ['self'])]);
    for (const id of ['a', 'b', 'c']) expect(flat.get(id)).toEqual(new Set(['u1', 'u2', 'u3']));
    expect(flat.get('self')).toEqual(new Set(['u4']));
  });

  it('ignores nested groups that were not read', () => {
    expect(flattenGroups([group('a', ['u1'], ['elsewhere'])]).get('a')).toEqual(new Set(['u1']));
  });
});
