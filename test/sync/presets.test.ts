import { mkdtempSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  InvalidDirectoryPreset,
  PRESETS_DIRECTORY,
  PRESET_FILES,
  directoryPresets,
  loadDirectoryPresets,
  resolveConnectionSettings,
} from '../../src/sync/presets.js';
import { DEFAULT_PAGE_SIZE, DEFAULT_TIME_LIMIT_SECONDS, directoryConfigSchema, type DirectoryConfigInput } from '../../src/sync/settings.js';

const base: DirectoryConfigInput = {
  kind: 'ldap',
  url: 'ldap://ldap.example.test',
  bindDn: 'cn=reader,dc=example,dc=test',
  users: { baseDn: 'ou=People,dc=example,dc=test' },
};

describe('directory presets', () => {
  it('ships Active Directory, OpenLDAP and FreeIPA presets that pass their schema', () => {
    const presets = directoryPresets();
    expect(presets.activeDirectory.users).toMatchObject({
      externalIdAttribute: 'objectGUID',
      externalIdFormat: 'guid',
      disabledFilter: '(userAccountControl:1.2.840.113556.1.4.803:=2)',
    });
    expect(presets.openldap.users).toMatchObject({ externalIdAttribute: 'entryUUID', externalIdFormat: 'string' });
    expect(presets.openldap.users.disabledFilter).toBeUndefined();
    expect(presets.openldap.groups.memberAttributes).toEqual(['member', 'uniqueMember', 'memberUid']);
    expect(presets.freeipa.users.disabledFilter).toBe('(nsAccountLock=TRUE)');
  });

  it('rejects a preset file with a bad field, naming the file and the path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-presets-'));
    for (const file of Object.values(PRESET_FILES)) copyFileSync(new URL(file, PRESETS_DIRECTORY), join(dir, file));
    const broken = { ...directoryPresets().openldap, users: { ...directoryPresets().openldap.users, externalIdFormat: 'binary' } };
    writeFileSync(join(dir, PRESET_FILES.openldap), JSON.stringify(broken));
    const load = () => loadDirectoryPresets(pathToFileURL(`${dir}/`));
    expect(load).toThrow(InvalidDirectoryPreset);
    expect(load).toThrow(/openldap\.json.*users\.externalIdFormat/);
  });

  it('fills an OpenLDAP configuration from the openldap preset and the defaults', () => {
    const settings = resolveConnectionSettings(base, 'pw');
    expect(settings).toEqual({
      kind: 'ldap',
      url: 'ldap://ldap.example.test',
      bindDn: 'cn=reader,dc=example,dc=test',
      bindPassword: 'pw',
      tls: { ca: undefined, startTls: false },
      timeLimitSeconds: DEFAULT_TIME_LIMIT_SECONDS,
      pageSize: DEFAULT_PAGE_SIZE,
      users: {
        baseDn: 'ou=People,dc=example,dc=test',
        filter: '(objectClass=inetOrgPerson)',
        externalIdAttribute: 'entryUUID',
        externalIdFormat: 'string',
        emailAttribute: 'mail',
        nameAttribute: 'cn',
        uidAttribute: 'uid',
        disabledFilter: undefined,
      },
      groups: undefined,
    });
  });

  it('uses the activeDirectory preset for kind activeDirectory, with guid ids and the disabled bit', () => {
    const settings = resolveConnectionSettings(
      { ...base, kind: 'activeDirectory', groups: { baseDn: 'dc=corp,dc=test' }, tls: { startTls: true } },
      'pw',
    );
    expect(settings.users.externalIdFormat).toBe('guid');
    expect(settings.users.disabledFilter).toBe('(userAccountControl:1.2.840.113556.1.4.803:=2)');
    expect(settings.groups).toMatchObject({ baseDn: 'dc=corp,dc=test', externalIdAttribute: 'objectGUID', externalIdFormat: 'guid', memberAttributes: ['member'] });
    expect(settings.tls.startTls).toBe(true);
  });

  it('lets the fields the configuration gives win over the preset, and the named preset over the kind', () => {
    const settings = resolveConnectionSettings(
      {
        ...base,
        preset: 'freeipa',
        users: { baseDn: 'cn=users,cn=accounts,dc=ipa,dc=test', emailAttribute: 'otherMailbox', externalIdAttribute: 'uid' },
        groups: { baseDn: 'cn=groups,cn=accounts,dc=ipa,dc=test', memberAttributes: ['member', 'memberUid'] },
        pageSize: 1000,
        timeLimitSeconds: 30,
      },
      'pw',
    );
    expect(settings.users).toMatchObject({ emailAttribute: 'otherMailbox', externalIdAttribute: 'uid', externalIdFormat: 'string', disabledFilter: '(nsAccountLock=TRUE)', nameAttribute: 'displayName' });
    expect(settings.groups).toMatchObject({ externalIdAttribute: 'ipaUniqueID', memberAttributes: ['member', 'memberUid'] });
    expect(settings).toMatchObject({ pageSize: 1000, timeLimitSeconds: 30 });
  });

  it('treats objectGUID named by a configuration as a GUID even under an LDAP preset', () => {
    const settings = resolveConnectionSettings({ ...base, users: { ...base.users, externalIdAttribute: 'objectGUID' } }, 'pw');
    expect(settings.users.externalIdFormat).toBe('guid');
  });

  it('resolves the README example bodies', () => {
    const body = directoryConfigSchema.parse({
      kind: 'activeDirectory',
      url: 'ldaps://dc01.corp.example.com',
      bindDn: 'CN=portico-reader,OU=Service Accounts,DC=corp,DC=example,DC=com',
      bindPassword: 'x',
      users: { baseDn: 'OU=Staff,DC=corp,DC=example,DC=com' },
      groups: { baseDn: 'OU=Groups,DC=corp,DC=example,DC=com' },
    });
    expect(resolveConnectionSettings(body, 'x').users.filter).toBe('(&(objectCategory=person)(objectClass=user))');
  });
});
