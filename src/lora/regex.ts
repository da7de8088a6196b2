// Python `re` patterns (as PEFT configs hold them) compiled to JavaScript RegExps.
// The common syntax is shared; the Python-only spellings are rewritten:
//   (?P<name>…) → (?<name>…), (?P=name) → \k<name>, \A → ^, \Z → $,
//   a leading inline flag group such as (?i) or (?s) → RegExp flags.

/** Rewrites a Python pattern to JavaScript source and flags (throws SyntaxError if JS rejects it). */
export function pythonPattern(pattern: string): { source: string; flags: string } {
  let flags = '';
  let src = pattern;
  const inline = /^\(\?([aiLmsux]+)\)/.exec(src);
  if (inline) {
    for (const f of inline[1]!) {
      if (f === 'i' || f === 'm' || f === 's') flags += f;
      else if (f === 'x' || f === 'L') throw new SyntaxError(`inline flag (?${f}) is not supported`);
      // 'a' (ASCII) and 'u' (unicode) do not change matching of ASCII module names
    }
    src = src.slice(inline[0].length);
  }
  src = src
    .replace(/\(\?P</g, '(?<')
    .replace(/\(\?P=(\w+)\)/g, '\\k<$1>')
    .replace(/\\A/g, '^')
    .replace(/\\Z/g, '$');
  new RegExp(src, flags); // throws SyntaxError with JS's reason
  return { source: src, flags };
}

const cache = new Map<string, RegExp>();

function compiled(key: string, build: () => RegExp): RegExp {
  let re = cache.get(key);
  if (!re) {
    re = build();
    cache.set(key, re);
  }
  return re;
}

/** Python re.fullmatch(pattern, s) is not None. */
export function fullMatch(pattern: string, s: string): boolean {
  const re = compiled(`full\0${pattern}`, () => {
    const { source, flags } = pythonPattern(pattern);
    return new RegExp(`^(?:${source})$`, flags);
  });
  return re.test(s);
}

/**
 * PEFT's get_pattern_key test: re.match(rf"(.*\.)?({key})$", name), i.e. the pattern
 * matches the whole name or a dotted suffix of it.
 */
export function suffixPatternMatch(pattern: string, s: string): boolean {
  const re = compiled(`sfx\0${pattern}`, () => {
    const { source, flags } = pythonPattern(pattern);
    return new RegExp(`^(.*\\.)?(${source})$`, flags);
  });
  return re.test(s);
}

/** Checks that a pattern compiles; returns the reason when it does not. */
export function patternError(pattern: string): string | null {
  try {
    pythonPattern(pattern);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
