// JSONL text as objects, the one reader every JSONL input goes through (training records,
// classification examples, image lists, predictions' inputs).
import { describeValue, type DataIssue } from './errors.js';

/**
 * The JSON objects of a JSONL text (`content` of `file`), each with its 1-based line: a
 * leading BOM is dropped, `\r\n` accepted, blank lines skipped. A line that is not valid JSON or
 * not an object is reported (file and line) and skipped; `report` returning false stops the scan.
 */
export function* jsonlObjects(content: string, file: string, report: (issue: DataIssue) => boolean | void): Generator<{ line: number; value: Record<string, unknown> }> {
  if (content.charCodeAt(0) === 0xfeff) content = content.slice(1);
  const lines = content.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const src = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
    if (src.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(src);
    } catch (err) {
      if (report({ file, line, message: `invalid JSON: ${(err as Error).message}` }) === false) return;
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      if (report({ file, line, message: `expected a JSON object, got ${describeValue(value)}` }) === false) return;
      continue;
    }
    yield { line, value: value as Record<string, unknown> };
  }
}
