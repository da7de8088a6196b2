// JSON objects from text, with problems collected rather than thrown one by one
// (json.node.ts reads them from files).
import { Problems, describe } from './errors.js';

export type JsonObject = Record<string, unknown>;

/** Parses `text` (from `file`) as a JSON object; records a problem naming the file when it is invalid JSON or not an object. */
export function parseJsonObject(text: string, file: string, problems: Problems): JsonObject | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    problems.add(`${file} is not valid JSON (${(err as Error).message})`);
    return undefined;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    problems.add(`${file} must hold a JSON object, got ${describe(json)}`);
    return undefined;
  }
  return json as JsonObject;
}
