/**
 * AD `objectGUID` is 16 bytes; its string form prints the first three fields little-endian
 * (MS-DTYP §2.3.4.2): bytes 03020100-0504-0706-0809-0a0b0c0d0e0f.
 */
export function formatGuid(bytes: Buffer): string | null {
  if (bytes.length !== 16) return null;
  const hex = (indexes: number[]) => indexes.map((i) => bytes[i]!.toString(16).padStart(2, '0')).join('');
  return [
    hex([3, 2, 1, 0]),
    hex([5, 4]),
    hex([7, 6]),
    hex([8, 9]),
    hex([10, 11, 12, 13, 14, 15]),
  ].join('-');
}
