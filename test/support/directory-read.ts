/**
 * Reads a real directory the way a sync does (settings resolved from a configuration, the real
 * connector), for the connector suites: a snapshot, or the DirectoryReadError a read fails with.
 */
import { expect } from 'vitest';
import { createDirectorySource } from '../../connectors/index.js';
import { resolveConnectionSettings } from '../../src/sync/presets.js';
import type { DirectoryConfigInput } from '../../src/sync/settings.js';
import { DirectoryReadError, type DirectorySnapshot } from '../../src/sync/source.js';

/** `read` and `readError` with `defaultPassword()` as the bind password unless one is given. */
export function directoryReader(defaultPassword: () => string) {
  async function read(input: DirectoryConfigInput, password = defaultPassword()): Promise<DirectorySnapshot> {
    const source = createDirectorySource(resolveConnectionSettings(input, password));
    try {
      return await source.read();
    } finally {
      await source.close();
    }
  }
  async function readError(input: DirectoryConfigInput, password = defaultPassword()): Promise<DirectoryReadError> {
    const error = await read(input, password).then(
      () => {
        throw new Error('the read succeeded');
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DirectoryReadError);
    return error as DirectoryReadError;
  }
  return { read, readError };
}
