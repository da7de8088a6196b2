// Numbers as lorakit prints them.

/** n rounded, with thousands separators: 1234567 → "1,234,567" (Python's `{:,d}`). */
export function commas(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}
