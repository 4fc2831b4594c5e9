/* Computes the checksum of <CURSOR> */
export function checksum(data: Uint8Array): number {
  return data.reduce((a, b) => (a + b) & 0xff, 0);
}
