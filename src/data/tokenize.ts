// Records → token ids plus a target mask (which tokens the loss trains on).
//
// Conventions (mlx-lm's `datasets.py` and Hugging Face TRL's SFT, where they agree):
// - text: encode with the tokenizer's special tokens (the post-processor adds BOS where the model
//   has one), then append EOS unless the text already ends with it. Every token is a target.
// - prompt/completion (plain, TRL's layout): encode(prompt) with special tokens, then
//   encode(completion) without, then EOS. With masking the prompt tokens are not targets; the
//   completion and its EOS are. (mlx-lm instead renders the pair as a user/assistant chat through
//   the template: `completionsAsChat: true` does that.)
// - chat: render the whole conversation with the chat template and encode it WITHOUT adding special
//   tokens (the template places BOS and the turn markers, as `apply_chat_template` does). No EOS is
//   appended: the template's end-of-turn token ends each assistant turn. With masking, the targets
//   are every assistant turn (not only the last, as mlx-lm does) as it appears in the whole
//   rendering: from the end of the generation prompt that opens it to the end of its end-of-turn
//   marker. Real templates are not all prefix-stable (Qwen3 drops the <think> block of assistant
//   turns before the last user query, so a turn renders differently in the middle of a
//   conversation than at its end; Llama 3's first template writes the assistant header whether or
//   not a generation prompt is asked for), so each turn is located in the whole rendering itself
//   (locateTurn):
//   - start: render(messages[:i], addGenerationPrompt) when it is a prefix of the whole rendering;
//     else the end of the first generation prompt (the text addGenerationPrompt appends) after
//     the previous assistant turn;
//   - end, tried in order: (1) the content's end (the conversation rendered again with a marker
//     appended to the turn's content, or to the content with trailing whitespace cut for
//     templates that `trim`: where the marker lands, when removing it gives back the whole
//     rendering) followed by the end-of-turn marker (what the template writes after the content
//     when the turn ends the conversation, cut before the second special token in it: Llama 3's
//     "<|eot_id|>" ends the turn, the "<|start_header_id|>assistant…" after it does not);
//     (2) render(messages[:i+1]), when both it and the start's rendering are prefixes of the
//     whole rendering; (3) the first special token after the start (the end-of-turn marker) and
//     the whitespace after it (Qwen3 writes a newline before tool calls only when there is
//     content, so the marked content in (1) moves them). None of them: the line is an error.
//   The ids are those of the whole text encoded once. The pieces between boundaries are encoded
//   one by one too: when they concatenate to the whole encoding (the usual case: boundaries sit
//   next to special tokens) they give the mask directly. Otherwise a boundary's token index is the
//   length of the prefix's encoding, if that is a prefix of the whole encoding; if even that fails
//   (a merge spans the boundary), the pieces' ids are used, which is exactly what the model sees
//   when it generates after the prompt.

import type { ChatMessage, ChatRecord, DataRecord } from './records.js';

/** What the data pipeline needs of a tokenizer; src/io's Tokenizer has it. */
export interface DataTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], options?: { addGenerationPrompt?: boolean; tools?: readonly unknown[] }): string;
  /** The first one is appended as EOS (none appended when the list is empty). */
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | undefined;
  /** false when the tokenizer has no chat template (chat data is then one whole-file error) */
  readonly hasChatTemplate?: boolean;
  /** The text of every special added token (end-of-turn markers are among them). */
  readonly specialTokenTexts?: readonly string[];
}

export interface TokenizeOptions {
  /** Train only on completions / assistant turns. Default true. (Text records train on every token.) */
  maskPrompt?: boolean;
  /** Render prompt/completion pairs as a user/assistant chat with the template (mlx-lm). Default false. */
  completionsAsChat?: boolean;
  /**
   * Tokens past this many are cut anyway (the dataset's maxLength): a long text or
   * prompt/completion is encoded from a prefix (encodeHead), so a 50 MB line costs what its
   * first tokens cost. The ids kept are those of the whole text; the length past them is not
   * counted.
   */
  maxTokens?: number;
}

/** Slack tokens encoded past the ones kept: a prefix's encoding can differ from the whole text's only near its cut. */
const HEAD_MARGIN = 64;

/**
 * The first `need` tokens of encode(text) without encoding all of a long text: prefixes of
 * growing length (16 characters per token needed, then ×4) until one gives `need` + 64 tokens,
 * which are kept (tokens near a prefix's cut can differ from the whole text's; 64 tokens
 * before it cannot, since pre-tokenizers split locally). Short texts are encoded whole.
 */
export function encodeHead(tok: DataTokenizer, text: string, addSpecialTokens: boolean, need: number | undefined): number[] {
  if (need !== undefined) {
    for (let chars = Math.max(4096, (need + HEAD_MARGIN) * 16); chars < text.length; chars *= 4) {
      const ids = tok.encode(text.slice(0, chars), { addSpecialTokens });
      if (ids.length >= need + 2 * HEAD_MARGIN) return ids.slice(0, need + HEAD_MARGIN);
    }
  }
  return tok.encode(text, { addSpecialTokens });
}

export interface TokenizedRecord {
  ids: number[];
  /** 1 where the token is a target: its prediction from the previous position counts in the loss */
  targetMask: Uint8Array;
}

/** A problem with one record (no file:line: the caller adds them). */
export class RecordError extends Error {
  override name = 'RecordError';
}

function appendEos(ids: number[], targets: number[], tok: DataTokenizer, target: 0 | 1): void {
  const eos = tok.eosTokenIds[0];
  if (eos !== undefined && ids[ids.length - 1] !== eos) {
    ids.push(eos);
    targets.push(target);
  }
}

export function tokenizeRecord(rec: DataRecord, tok: DataTokenizer, options: TokenizeOptions = {}): TokenizedRecord {
  const mask = options.maskPrompt ?? true;
  switch (rec.format) {
    case 'text': {
      const ids = encodeHead(tok, rec.text, true, options.maxTokens);
      const targets = ids.map(() => 1);
      appendEos(ids, targets, tok, 1);
      return { ids, targetMask: Uint8Array.from(targets) };
    }
    case 'completion': {
      if (options.completionsAsChat) {
        const messages: ChatMessage[] = [
          { role: 'user', content: rec.prompt },
          { role: 'assistant', content: rec.completion },
        ];
        return tokenizeChat({ format: 'chat', line: rec.line, messages }, tok, mask);
      }
      const p = encodeHead(tok, rec.prompt, true, options.maxTokens);
      const c = encodeHead(tok, rec.completion, false, options.maxTokens === undefined ? undefined : Math.max(0, options.maxTokens - p.length));
      const ids = [...p, ...c];
      const targets = [...p.map(() => (mask ? 0 : 1)), ...c.map(() => 1)];
      appendEos(ids, targets, tok, 1);
      return { ids, targetMask: Uint8Array.from(targets) };
    }
    case 'chat':
      return tokenizeChat(rec, tok, mask);
  }
}

function render(tok: DataTokenizer, messages: readonly ChatMessage[], addGenerationPrompt: boolean, tools: readonly unknown[] | undefined): string {
  try {
    return tok.applyChatTemplate(messages, tools === undefined ? { addGenerationPrompt } : { addGenerationPrompt, tools });
  } catch (err) {
    throw new RecordError(`chat template: ${(err as Error).message}`);
  }
}

function tokenizeChat(rec: ChatRecord, tok: DataTokenizer, mask: boolean): TokenizedRecord {
  const full = render(tok, rec.messages, false, rec.tools);
  if (!mask) {
    const ids = tok.encode(full, { addSpecialTokens: false });
    return { ids, targetMask: new Uint8Array(ids.length).fill(1) };
  }
  // Character spans [start, end) of the assistant turns.
  const spans: [number, number][] = [];
  rec.messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const prev = spans.length > 0 ? spans[spans.length - 1]![1] : 0;
    const span = locateTurn(tok, rec, i, full, prev);
    if (span === null) {
      throw new RecordError(
        `chat template is not prefix-stable at message ${i + 1} (assistant): the turn cannot be located in the whole rendering (its content is not written as given, and rendering the conversation up to that turn does not give a prefix of the whole rendering), so the assistant tokens cannot be located for masking (turn masking off to train on every token)`,
      );
    }
    const [start, end] = span;
    if (end > start) spans.push([start, end]);
  });
  if (spans.length === 0) throw new RecordError('no assistant tokens: the template renders the assistant turns as empty');
  const cuts = [0];
  for (const [s, e] of spans) cuts.push(s, e);
  cuts.push(full.length);

  const ids = tok.encode(full, { addSpecialTokens: false });
  // The pieces between cuts, encoded one by one: outside, span, outside, span, …, outside.
  const pieceIds: number[] = [];
  const pieceTargets: number[] = [];
  for (let k = 0; k + 1 < cuts.length; k++) {
    if (cuts[k + 1]! <= cuts[k]!) continue;
    const piece = tok.encode(full.slice(cuts[k], cuts[k + 1]), { addSpecialTokens: false });
    for (const id of piece) {
      pieceIds.push(id);
      pieceTargets.push(k % 2);
    }
  }
  const targetMask = Uint8Array.from(pieceTargets);
  // Usually the pieces concatenate to the whole encoding (the cuts sit next to special tokens).
  if (pieceIds.length === ids.length && pieceIds.every((id, k) => id === ids[k])) return { ids, targetMask };
  // Else locate each cut in the whole encoding by encoding the prefix up to it, when that is a
  // prefix of the whole encoding; failing that, keep the pieces.
  const at: number[] = [];
  for (const c of cuts) {
    if (c === 0) at.push(0);
    else if (c === full.length) at.push(ids.length);
    else {
      const p = tok.encode(full.slice(0, c), { addSpecialTokens: false });
      if (p.length > ids.length || p.some((id, k) => id !== ids[k])) break;
      at.push(p.length);
    }
  }
  if (at.length === cuts.length) {
    const whole = new Uint8Array(ids.length);
    for (let k = 0; k < spans.length; k++) whole.fill(1, at[2 * k + 1], at[2 * k + 2]);
    return { ids, targetMask: whole };
  }
  return { ids: pieceIds, targetMask };
}

/** Appended to an assistant turn's content to find where the template writes it. */
const MARK = '\u0000lorakit-turn-end\u0000';

function withContent(messages: readonly ChatMessage[], i: number, content: string): ChatMessage[] {
  const out = messages.slice();
  out[i] = { ...messages[i]!, content };
  return out;
}

/**
 * Where the content of message i ends in the rendering of `messages` (= `text`): the marker's
 * place, when the marked rendering is `text` with the marker inserted once. Null when the
 * template does not write the content as given.
 */
function contentEnd(tok: DataTokenizer, messages: readonly ChatMessage[], i: number, text: string, tools: readonly unknown[] | undefined): number | null {
  const content = messages[i]!.content;
  const tries = content.trimEnd() === content ? [content] : [content, content.trimEnd()];
  for (const c of tries) {
    let marked: string;
    try {
      marked = tok.applyChatTemplate(withContent(messages, i, c + MARK), tools === undefined ? {} : { tools });
    } catch {
      return null;
    }
    const at = marked.indexOf(MARK);
    if (at >= 0 && marked.indexOf(MARK, at + 1) < 0 && marked.slice(0, at) + marked.slice(at + MARK.length) === text) return at;
  }
  return null;
}

/** The earliest special token text at or after `from` in `text`: [start, end), or null. */
function nextSpecial(text: string, from: number, specials: readonly string[]): [number, number] | null {
  let best: [number, number] | null = null;
  for (const s of specials) {
    if (s === '') continue;
    const at = text.indexOf(s, from);
    if (at >= 0 && (best === null || at < best[0] || (at === best[0] && at + s.length > best[1]))) best = [at, at + s.length];
  }
  return best;
}

/** Assistant turn i's span [start, end) in the whole rendering `full`, or null when it cannot be located. See the header. */
function locateTurn(tok: DataTokenizer, rec: ChatRecord, i: number, full: string, prev: number): [number, number] | null {
  const { messages, tools } = rec;
  const specials = tok.specialTokenTexts ?? [];
  const before = render(tok, messages.slice(0, i), true, tools);
  const prefixStart = full.startsWith(before);
  let start: number | null = prefixStart ? before.length : null;
  if (start === null) {
    // The generation prompt is what addGenerationPrompt appends; this turn opens after its first
    // occurrence past the previous assistant turn (only other roles' turns lie between).
    const bare = render(tok, messages.slice(0, i), false, tools);
    const gen = before.startsWith(bare) ? before.slice(bare.length) : '';
    const at = gen === '' ? -1 : full.indexOf(gen, prev);
    if (at >= 0) start = at + gen.length;
  }
  if (start === null || start < prev) return null;

  // 1. The content's end, then the end-of-turn marker: what follows the content when this turn
  //    ends the conversation, cut before the second special token in it.
  const end = contentEnd(tok, messages, i, full, tools);
  if (end !== null && end >= start) {
    const alone = render(tok, messages.slice(0, i + 1), false, tools);
    const q = contentEnd(tok, messages.slice(0, i + 1), i, alone, tools);
    if (q !== null) {
      let tail = alone.slice(q);
      const first = nextSpecial(tail, 0, specials);
      const second = first === null ? null : nextSpecial(tail, first[1], specials);
      if (second !== null) tail = tail.slice(0, second[0]);
      if (full.startsWith(tail, end)) return [start, end + tail.length];
    }
  }
  // 2. Prefixes of the whole rendering: the turn spans render(messages[:i], addGenerationPrompt)
  //    .. render(messages[:i+1]).
  const upto = render(tok, messages.slice(0, i + 1), false, tools);
  if (prefixStart && full.startsWith(upto) && upto.length >= before.length) return [start, upto.length];
  // 3. The template changes the content as it writes it (Qwen3 puts a newline between content and
  //    tool calls only when there is content): the turn runs to its first special token (its
  //    end-of-turn marker) and the whitespace after it.
  const stop = nextSpecial(full, start, specials);
  if (stop === null) return null;
  let e = stop[1];
  while (e < full.length && /\s/.test(full[e]!)) e++;
  return [start, e];
}
