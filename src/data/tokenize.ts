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
//   are each assistant turn's tokens, from the end of the generation prompt that opens it to the end
//   of the turn as rendered (content and end-of-turn marker): every assistant turn, not only the last
//   (mlx-lm masks everything before the last one). Boundaries come from rendering prefixes of the
//   conversation: turn i spans render(messages[:i], addGenerationPrompt) ..
//   render(messages[:i+1]); both must be prefixes of the full rendering, else the template is not
//   prefix-stable and the line is an error. The ids are those of the whole text encoded once. The
//   pieces between boundaries are encoded one by one too: when they concatenate to the whole
//   encoding (the usual case: boundaries sit next to special tokens) they give the mask directly.
//   Otherwise a boundary's token index is the length of the prefix's encoding, if that is a prefix
//   of the whole encoding; if even that fails (a merge spans the boundary), the pieces' ids are
//   used, which is exactly what the model sees when it generates after the prompt.

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
}

export interface TokenizeOptions {
  /** Train only on completions / assistant turns. Default true. (Text records train on every token.) */
  maskPrompt?: boolean;
  /** Render prompt/completion pairs as a user/assistant chat with the template (mlx-lm). Default false. */
  completionsAsChat?: boolean;
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
      const ids = tok.encode(rec.text, { addSpecialTokens: true });
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
      const p = tok.encode(rec.prompt, { addSpecialTokens: true });
      const c = tok.encode(rec.completion, { addSpecialTokens: false });
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
    const before = render(tok, rec.messages.slice(0, i), true, rec.tools);
    const upto = render(tok, rec.messages.slice(0, i + 1), false, rec.tools);
    if (!full.startsWith(before) || !full.startsWith(upto) || upto.length < before.length) {
      throw new RecordError(
        `chat template is not prefix-stable at message ${i + 1} (assistant): rendering the conversation up to that turn does not give a prefix of the whole rendering, so the assistant tokens cannot be located for masking (turn masking off to train on every token)`,
      );
    }
    const start = Math.max(before.length, spans.length > 0 ? spans[spans.length - 1]![1] : 0);
    if (upto.length > start) spans.push([start, upto.length]);
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
