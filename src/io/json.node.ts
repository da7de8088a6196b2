// Reading the JSON files of a model folder, with problems collected rather than thrown one by one.
import * as fs from 'node:fs';
import type { Problems } from './errors.js';
import { parseJsonObject, type JsonObject } from './json.js';

/**
 * Reads `file` as a JSON object. Returns undefined when the file does not exist (and `required`
 * is false); records a problem naming the file when it is missing but required, unreadable,
 * invalid JSON, or not an object.
 */
export function readJsonObject(file: string, problems: Problems, required: boolean): JsonObject | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return undefined;
    problems.add(code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file} (${code ?? (err as Error).message})`);
    return undefined;
  }
  return parseJsonObject(text, file, problems);
}

export function readTextFile(file: string, problems: Problems): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') problems.add(`cannot read ${file} (${code ?? (err as Error).message})`);
    return undefined;
  }
}
