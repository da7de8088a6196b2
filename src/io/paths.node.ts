// Output folders checked against input folders by real path (docs/ARCHITECTURE.md §Files
// written and signals). Comparing path.resolve() strings misses symlinks and bind-style
// aliases: `ln -s base link; merge --model base --out link` would overwrite the base model.
// Every command that writes a folder calls checkOutputFolder once, before any work.
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The real path of `p`; for a path that does not exist yet, the real path of its nearest
 * existing ancestor joined with the rest (what the folder will be once created).
 */
export function realPathOf(p: string): string {
  let head = path.resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync.native(head), ...rest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
      const parent = path.dirname(head);
      if (parent === head) return path.join(head, ...rest);
      rest.unshift(path.basename(head));
      head = parent;
    }
  }
}

/** An input a command reads: its flag (for the message) and its path. */
export interface InputPath {
  flag: string;
  path: string;
}

/**
 * Throws (message naming both flags and the real path) when `out` is, by real path, one of the
 * inputs: writing there would overwrite what the command reads.
 */
export function checkOutputFolder(outFlag: string, out: string, inputs: readonly InputPath[]): void {
  const real = realPathOf(out);
  for (const inp of inputs) {
    if (realPathOf(inp.path) !== real) continue;
    const alias = path.resolve(out) === path.resolve(inp.path) ? '' : ` (both are ${real})`;
    throw new OutputFolderError(`${outFlag} ${out} is the ${inp.flag} folder${alias}; writing there would overwrite it; choose another folder`);
  }
}

export class OutputFolderError extends Error {
  override name = 'OutputFolderError';
}
