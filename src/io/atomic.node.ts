// Atomic file and folder writes.
//
// A file is written to a hidden temp file in the same directory, fsynced, renamed over the
// target, and then the directory is fsynced so the rename itself is durable. rename(2) within
// one filesystem is atomic: a reader (or a crash) sees either the old file or the new one,
// never a half-written file under the target's name. On any error the temp file is removed;
// after a hard kill (SIGKILL, power loss) a hidden `.<name>.tmp-*` file may be left behind,
// never the target.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

import type { FileData, FileDataSync } from './file-data.js';

export type { FileData, FileDataSync };

export interface AtomicWriteOptions {
  /** File mode for the new file (default 0o644, before umask). */
  mode?: number;
}

function tempName(target: string, kind: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.${kind}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

function isAsyncIterable(x: unknown): x is AsyncIterable<Uint8Array> {
  return typeof x === 'object' && x !== null && Symbol.asyncIterator in x;
}

function checkChunk(chunk: unknown, target: string): Uint8Array {
  if (!(chunk instanceof Uint8Array)) {
    throw new TypeError(`writeFileAtomic ${target}: every chunk must be a Uint8Array, got ${chunk === null ? 'null' : typeof chunk}`);
  }
  return chunk;
}

function writeAllSync(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
}

async function writeAll(handle: fsp.FileHandle, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, off, bytes.length - off);
    off += bytesWritten;
  }
}

/** fsyncs a directory so that renames and creations inside it survive a crash. */
export function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (err) {
    // Some filesystems (and Windows) cannot open or fsync a directory; the rename is still atomic.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw err;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw err;
  } finally {
    await handle?.close();
  }
}

/**
 * A system error (ENOSPC, EIO, EDQUOT, …) names no file ("ENOSPC: no space left on device,
 * write"): the message gets the file being written, the code stays.
 */
function naming(err: unknown, target: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e instanceof Error && typeof e.code === 'string' && !e.message.includes(target)) e.message = `${e.message} (writing ${target})`;
  return err;
}

/** Writes data to a new file at `file` (no rename, no temp): creates it exclusively, fsyncs it. */
async function writeNewFile(file: string, data: FileData, mode: number, target: string): Promise<void> {
  const handle = await fsp.open(file, 'wx', mode).catch((err: unknown) => Promise.reject(naming(err, target)));
  try {
    if (typeof data === 'string') await writeAll(handle, Buffer.from(data, 'utf8'));
    else if (data instanceof Uint8Array) await writeAll(handle, data);
    else if (isAsyncIterable(data)) for await (const c of data) await writeAll(handle, checkChunk(c, target));
    else for (const c of data) await writeAll(handle, checkChunk(c, target));
    await handle.sync();
  } catch (err) {
    throw naming(err, target);
  } finally {
    await handle.close();
  }
}

function writeNewFileSync(file: string, data: FileDataSync, mode: number, target: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', mode);
  } catch (err) {
    throw naming(err, target);
  }
  try {
    if (typeof data === 'string') writeAllSync(fd, Buffer.from(data, 'utf8'));
    else if (data instanceof Uint8Array) writeAllSync(fd, data);
    else for (const c of data) writeAllSync(fd, checkChunk(c, target));
    fs.fsyncSync(fd);
  } catch (err) {
    throw naming(err, target);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Atomically replaces `file` with `data`: temp file in the same directory, fsync, rename, fsync
 * the directory. If writing fails (a chunk iterator throws, the disk fills up) the temp file is
 * removed and the old file, if any, is left exactly as it was.
 */
export async function writeFileAtomic(file: string, data: FileData, options: AtomicWriteOptions = {}): Promise<void> {
  const target = path.resolve(file);
  const tmp = tempName(target, 'tmp');
  try {
    await writeNewFile(tmp, data, options.mode ?? 0o644, target);
    await fsp.rename(tmp, target);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw naming(err, target);
  }
  await fsyncDir(path.dirname(target));
}

/** Synchronous twin of writeFileAtomic (chunks must be a synchronous iterable). */
export function writeFileAtomicSync(file: string, data: FileDataSync, options: AtomicWriteOptions = {}): void {
  const target = path.resolve(file);
  const tmp = tempName(target, 'tmp');
  try {
    writeNewFileSync(tmp, data, options.mode ?? 0o644, target);
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw naming(err, target);
  }
  fsyncDirSync(path.dirname(target));
}

/** Files of a folder: relative path (may contain '/') → content. */
export type FolderFiles = Map<string, FileData> | Record<string, FileData>;

function checkRelative(dir: string, name: string): string {
  const norm = path.normalize(name);
  if (name === '' || path.isAbsolute(name) || norm === '..' || norm.startsWith(`..${path.sep}`) || norm === '.') {
    throw new Error(`writeDirAtomic ${dir}: file name ${JSON.stringify(name)} must be a relative path inside the folder`);
  }
  return norm;
}

/**
 * Atomically replaces the folder `dir` with exactly `files`. The new folder is written and fsynced
 * as a hidden sibling first; only when it is complete is the old folder renamed aside, the new one
 * renamed into place, and the old one deleted. Until the new folder is complete the old one is
 * untouched. (Two renames cannot be one atomic step with Node's API: a crash between them leaves
 * the old folder as the hidden `.<name>.old-*` sibling and the complete new one as `.<name>.new-*`.)
 */
export async function writeDirAtomic(dir: string, files: FolderFiles, options: AtomicWriteOptions = {}): Promise<void> {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  const entries = files instanceof Map ? [...files.entries()] : Object.entries(files);
  const names = entries.map(([name]) => checkRelative(target, name));
  const tmp = tempName(target, 'new');
  let old: string | undefined;
  try {
    await fsp.mkdir(tmp);
    const made = new Set<string>([tmp]);
    for (let i = 0; i < entries.length; i++) {
      const file = path.join(tmp, names[i]!);
      const sub = path.dirname(file);
      if (!made.has(sub)) {
        await fsp.mkdir(sub, { recursive: true });
        made.add(sub);
      }
      await writeNewFile(file, entries[i]![1], options.mode ?? 0o644, path.join(target, names[i]!));
    }
    for (const sub of [...made].sort((a, b) => b.length - a.length)) await fsyncDir(sub);
    const exists = await fsp.stat(target).then(
      (s) => {
        if (!s.isDirectory()) throw new Error(`writeDirAtomic: ${target} exists and is not a folder`);
        return true;
      },
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return false;
        throw err;
      },
    );
    if (exists) {
      old = tempName(target, 'old');
      await fsp.rename(target, old);
    }
    await fsp.rename(tmp, target);
  } catch (err) {
    // Put the old folder back if it had been moved aside and the new one is not in place.
    if (old !== undefined && !fs.existsSync(target)) await fsp.rename(old, target).catch(() => undefined);
    await fsp.rm(tmp, { recursive: true, force: true });
    throw naming(err, target);
  }
  await fsyncDir(parent);
  if (old !== undefined) await fsp.rm(old, { recursive: true, force: true });
}

const LEFTOVER = /^\.(.+)\.(tmp|new|old)-(\d+)-[0-9a-f]{12}$/;

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Cleans what a hard kill of writeFileAtomic / writeDirAtomic left in `dir` (only leftovers of
 * processes no longer running): a `.<name>.old-*` folder whose target is missing means the
 * kill fell between the two renames, so its `.<name>.new-*` sibling is complete and is renamed
 * into place; every other leftover (half-written temp files and folders, old copies) is
 * removed. Returns what was done, one line each.
 */
export function recoverAtomicWrites(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const done: string[] = [];
  const left = names.map((n) => ({ n, m: LEFTOVER.exec(n) })).filter((x) => x.m && !alive(Number(x.m[3])));
  for (const { m } of left) {
    if (m![2] !== 'old') continue;
    const target = path.join(dir, m![1]!);
    const fresh = left.find((x) => x.m![1] === m![1] && x.m![2] === 'new' && x.m![3] === m![3]);
    if (!fs.existsSync(target) && fresh) {
      fs.renameSync(path.join(dir, fresh.n), target);
      done.push(`${target}: completed an interrupted replacement (from ${fresh.n})`);
    }
  }
  for (const { n } of left) {
    const p = path.join(dir, n);
    if (!fs.existsSync(p)) continue;
    fs.rmSync(p, { recursive: true, force: true });
    done.push(`${p}: removed a leftover of an interrupted write`);
  }
  if (done.length) fsyncDirSync(dir);
  return done;
}
