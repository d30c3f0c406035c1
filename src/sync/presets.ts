/**
 * Directory presets: the attribute maps of Active Directory, OpenLDAP and FreeIPA, kept as data in
 * `config/directory-presets/` and validated here, at load, by the schema this consumer owns. A
 * preset fills every map the configuration leaves out (directory-notes.md, "Identity and attributes").
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  DEFAULT_PAGE_SIZE,
  DEFAULT_TIME_LIMIT_SECONDS,
  DIRECTORY_KINDS,
  DIRECTORY_PRESETS,
  MEMBER_ATTRIBUTES,
  type ConnectionSettings,
  type DirectoryConfigInput,
  type ExternalIdFormat,
} from './settings.js';

export type DirectoryPresetName = (typeof DIRECTORY_PRESETS)[number];

/** Where the preset files live, resolved from this module so the working directory does not matter. */
export const PRESETS_DIRECTORY = new URL('../../config/directory-presets/', import.meta.url);

/** Each preset name and its file. */
export const PRESET_FILES: Record<DirectoryPresetName, string> = {
  activeDirectory: 'active-directory.json',
  openldap: 'openldap.json',
  freeipa: 'freeipa.json',
};

const attribute = z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,63}$/, 'must be an LDAP attribute name');
const filter = z.string().regex(/^\(.*\)$/s, 'must be an LDAP filter in parentheses');
const externalIdFormat = z.enum(['string', 'guid']);

export const directoryPresetSchema = z
  .object({
    /** What the preset is for, shown to nobody but the reader of the file. */
    description: z.string().min(1),
    /** The connector kind the preset is written for. */
    kind: z.enum(DIRECTORY_KINDS),
    users: z
      .object({
        filter,
        /** A stable id that survives renames and OU moves; never the DN. */
        externalIdAttribute: attribute,
        /** `guid`: a 16-byte binary value printed as a GUID string (AD objectGUID). */
        externalIdFormat,
        emailAttribute: attribute,
        nameAttribute: attribute,
        /** The attribute posixGroup `memberUid` values name. */
        uidAttribute: attribute,
        /** Entries matching the users filter and this are disabled; absent where the directory has no flag. */
        disabledFilter: filter.optional(),
      })
      .strict(),
    groups: z
      .object({
        filter,
        externalIdAttribute: attribute,
        externalIdFormat,
        nameAttribute: attribute,
        memberAttributes: z.array(z.enum(MEMBER_ATTRIBUTES)).min(1).max(3),
      })
      .strict(),
  })
  .strict();

export type DirectoryPreset = z.infer<typeof directoryPresetSchema>;

export class InvalidDirectoryPreset extends Error {
  constructor(file: string, issues: string) {
    super(`directory preset ${file} is invalid: ${issues}`);
    this.name = 'InvalidDirectoryPreset';
  }
}

/** Reads and validates every preset file; throws `InvalidDirectoryPreset` naming the file and each bad path. */
export function loadDirectoryPresets(directory: URL = PRESETS_DIRECTORY): Record<DirectoryPresetName, DirectoryPreset> {
  const entries = DIRECTORY_PRESETS.map((name) => {
    const file = new URL(PRESET_FILES[name], directory);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new InvalidDirectoryPreset(file.pathname, error instanceof Error ? error.message : String(error));
    }
    const parsed = directoryPresetSchema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
      throw new InvalidDirectoryPreset(file.pathname, issues);
    }
    return [name, parsed.data] as const;
  });
  return Object.fromEntries(entries) as Record<DirectoryPresetName, DirectoryPreset>;
}

let cached: Record<DirectoryPresetName, DirectoryPreset> | undefined;

/** The presets shipped in `config/`, loaded (and validated) once. */
export function directoryPresets(): Record<DirectoryPresetName, DirectoryPreset> {
  cached ??= loadDirectoryPresets();
  return cached;
}

/** The preset a configuration uses: the one it names, else the one of its kind. */
export function presetNameFor(config: Pick<DirectoryConfigInput, 'kind' | 'preset'>): DirectoryPresetName {
  return config.preset ?? (config.kind === 'activeDirectory' ? 'activeDirectory' : 'openldap');
}

/**
 * The format of an id attribute the configuration names: the preset's when it is the preset's
 * attribute, `guid` for AD's objectGUID, otherwise a string (entryUUID, ipaUniqueID, uid, …).
 */
function formatOf(attributeName: string, preset: { externalIdAttribute: string; externalIdFormat: ExternalIdFormat }): ExternalIdFormat {
  if (attributeName.toLowerCase() === preset.externalIdAttribute.toLowerCase()) return preset.externalIdFormat;
  return attributeName.toLowerCase() === 'objectguid' ? 'guid' : 'string';
}

/**
 * What a connector receives: the preset named by `config.preset` (default: by kind) under the
 * fields the configuration gives, the defaults of settings.ts, and the unsealed bind password.
 */
export function resolveConnectionSettings(config: DirectoryConfigInput, bindPassword: string): ConnectionSettings {
  const preset = directoryPresets()[presetNameFor(config)];
  const usersIdAttribute = config.users.externalIdAttribute ?? preset.users.externalIdAttribute;
  return {
    kind: config.kind,
    url: config.url,
    bindDn: config.bindDn,
    bindPassword,
    tls: { ca: config.tls?.ca, startTls: config.tls?.startTls ?? false },
    timeLimitSeconds: config.timeLimitSeconds ?? DEFAULT_TIME_LIMIT_SECONDS,
    pageSize: config.pageSize ?? DEFAULT_PAGE_SIZE,
    users: {
      baseDn: config.users.baseDn,
      filter: config.users.filter ?? preset.users.filter,
      externalIdAttribute: usersIdAttribute,
      externalIdFormat: formatOf(usersIdAttribute, preset.users),
      emailAttribute: config.users.emailAttribute ?? preset.users.emailAttribute,
      nameAttribute: config.users.nameAttribute ?? preset.users.nameAttribute,
      uidAttribute: config.users.uidAttribute ?? preset.users.uidAttribute,
      disabledFilter: config.users.disabledFilter ?? preset.users.disabledFilter,
    },
    groups: config.groups === undefined ? undefined : resolveGroups(config.groups, preset.groups),
  };
}

function resolveGroups(
  groups: NonNullable<DirectoryConfigInput['groups']>,
  preset: DirectoryPreset['groups'],
): NonNullable<ConnectionSettings['groups']> {
  const idAttribute = groups.externalIdAttribute ?? preset.externalIdAttribute;
  return {
    baseDn: groups.baseDn,
    filter: groups.filter ?? preset.filter,
    externalIdAttribute: idAttribute,
    externalIdFormat: formatOf(idAttribute, preset),
    nameAttribute: groups.nameAttribute ?? preset.nameAttribute,
    memberAttributes: groups.memberAttributes ?? [...preset.memberAttributes],
  };
}
