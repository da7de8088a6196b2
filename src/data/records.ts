// JSONL records: one JSON object a line, in the three layouts that mlx-lm and Hugging Face use.
//
//   text        {"text": "…"}
//   completion  {"prompt": "…", "completion": "…"}
//   chat        {"messages": [{"role": "system" | "user" | "assistant" | "tool", "content": "…"}, …]}
//               (optionally "tools": [...] for templates that render tool definitions)
//
// The format is detected per file from the first line that is a JSON object with one of these
// layouts (in mlx-lm's order: prompt+completion, then messages, then text). Every other line must
// have the same layout: a line of another layout is an error naming both lines. Other keys (an
// "id", metadata) are ignored. Blank lines are skipped.

import { CHAT_ROLES } from '../io/tokenizer.js';
import { describeValue, type DataIssue } from './errors.js';
import { jsonlObjects } from './jsonl.js';

export type DataFormat = 'text' | 'completion' | 'chat';

export const ROLES = CHAT_ROLES;
export type Role = (typeof ROLES)[number];

/** A chat message; other keys of the line's object (tool_calls, name…) are passed to the template. */
export interface ChatMessage {
  role: Role;
  content: string;
  [key: string]: unknown;
}

interface RecordBase {
  /** 1-based line in the file */
  line: number;
}
export interface TextRecord extends RecordBase {
  format: 'text';
  text: string;
}
export interface CompletionRecord extends RecordBase {
  format: 'completion';
  prompt: string;
  completion: string;
}
export interface ChatRecord extends RecordBase {
  format: 'chat';
  messages: ChatMessage[];
  tools?: unknown[];
}
export type DataRecord = TextRecord | CompletionRecord | ChatRecord;

const FORMAT_NAMES: Record<DataFormat, string> = { text: 'text', completion: 'prompt/completion', chat: 'chat' };
const FORMAT_KEYS: Record<DataFormat, string> = { text: '"text"', completion: '"prompt", "completion"', chat: '"messages"' };

/** The layout an object has, by its keys, or null when it has none of the known keys. */
export function layoutOf(obj: Record<string, unknown>): DataFormat | null {
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(obj, k);
  if (has('prompt') && has('completion')) return 'completion';
  if (has('messages')) return 'chat';
  if (has('text')) return 'text';
  if (has('prompt') || has('completion')) return 'completion';
  return null;
}

export interface ParseOptions {
  /** chat lines must hold an assistant turn (true when prompt masking is on) */
  requireAssistant: boolean;
}

export interface ParseResult {
  format: DataFormat | null;
  /** the line that fixed the format */
  formatLine: number;
  records: DataRecord[];
}

/**
 * Parses JSONL text. Problems go to `report` (with the file and line); it returns false to stop
 * scanning early. Lines with problems are left out of `records`.
 */
export function parseJsonl(content: string, file: string, options: ParseOptions, report: (issue: DataIssue) => boolean): ParseResult {
  const records: DataRecord[] = [];
  let format: DataFormat | null = null;
  let formatLine = 0;
  let go = true;
  const issue = (i: DataIssue): boolean => (go &&= report(i));
  const problem = (line: number, message: string): void => void issue({ file, line, message });
  for (const { line: lineNo, value: obj } of jsonlObjects(content, file, issue)) {
    if (!go) break;
    const layout = layoutOf(obj);
    if (format === null) {
      if (layout === null) {
        problem(lineNo, `no known field: expected "text", "prompt" and "completion", or "messages"; got ${keyList(obj)}`);
        continue;
      }
      format = layout;
      formatLine = lineNo;
    } else if (layout !== null && layout !== format) {
      problem(lineNo, `mixed formats: a ${FORMAT_NAMES[layout]} record (${FORMAT_KEYS[layout]}) in a ${FORMAT_NAMES[format]} file (${FORMAT_KEYS[format]}, set by line ${formatLine})`);
      continue;
    }
    const errors: string[] = [];
    const rec = checkRecord(format, obj, lineNo, options, errors);
    for (const e of errors) problem(lineNo, e);
    if (rec !== null && errors.length === 0) records.push(rec);
  }
  return { format, formatLine, records };
}

function keyList(obj: Record<string, unknown>): string {
  const keys = Object.keys(obj);
  return keys.length === 0 ? 'an empty object' : `keys ${keys.map((k) => JSON.stringify(k)).join(', ')}`;
}

function checkRecord(format: DataFormat, obj: Record<string, unknown>, line: number, options: ParseOptions, errors: string[]): DataRecord | null {
  switch (format) {
    case 'text': {
      const text = stringField(obj, 'text', errors);
      if (text === '') errors.push('empty text');
      return text === null ? null : { format, line, text };
    }
    case 'completion': {
      const prompt = stringField(obj, 'prompt', errors);
      const completion = stringField(obj, 'completion', errors);
      if (completion === '') errors.push('empty completion');
      return prompt === null || completion === null ? null : { format, line, prompt, completion };
    }
    case 'chat':
      return checkChat(obj, line, options, errors);
  }
}

function stringField(obj: Record<string, unknown>, key: string, errors: string[], where = ''): string | null {
  if (!Object.prototype.hasOwnProperty.call(obj, key)) {
    errors.push(`${where}missing field "${key}"`);
    return null;
  }
  const v = obj[key];
  if (typeof v !== 'string') {
    errors.push(`${where}wrong type: "${key}" must be a string, got ${describeValue(v)}`);
    return null;
  }
  return v;
}

function checkChat(obj: Record<string, unknown>, line: number, options: ParseOptions, errors: string[]): ChatRecord | null {
  const raw = obj['messages'];
  if (!Array.isArray(raw)) {
    errors.push(`wrong type: "messages" must be an array of {"role", "content"} objects, got ${describeValue(raw)}`);
    return null;
  }
  if (raw.length === 0) {
    errors.push('empty messages: "messages" has no turns');
    return null;
  }
  const messages: ChatMessage[] = [];
  raw.forEach((m: unknown, k) => {
    const where = `message ${k + 1}: `;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      errors.push(`${where}expected an object with "role" and "content", got ${describeValue(m)}`);
      return;
    }
    const msg = m as Record<string, unknown>;
    const role = stringField(msg, 'role', errors, where);
    if (role !== null && !(ROLES as readonly string[]).includes(role)) {
      errors.push(`${where}unknown role ${JSON.stringify(role)} (expected one of ${ROLES.join(', ')})`);
      return;
    }
    // An assistant turn that only calls tools may leave content out or null.
    const toolCallOnly = role === 'assistant' && Array.isArray(msg['tool_calls']) && (msg['content'] === undefined || msg['content'] === null);
    const content = toolCallOnly ? '' : stringField(msg, 'content', errors, where);
    if (role === null || content === null) return;
    messages.push({ ...msg, role: role as Role, content });
  });
  let tools: unknown[] | undefined;
  if (obj['tools'] !== undefined && obj['tools'] !== null) {
    if (!Array.isArray(obj['tools'])) errors.push(`wrong type: "tools" must be an array, got ${describeValue(obj['tools'])}`);
    else tools = obj['tools'];
  }
  if (messages.length === raw.length && options.requireAssistant && !messages.some((m) => m.role === 'assistant')) {
    errors.push('no assistant turn: with prompt masking on there is nothing to train on (add an assistant message, or turn masking off)');
  }
  if (errors.length > 0) return null;
  return tools === undefined ? { format: 'chat', line, messages } : { format: 'chat', line, messages, tools };
}
