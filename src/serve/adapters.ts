// The adapters a server holds over its base model: public names (anything a client may send
// as `model`) mapped to PeftModel adapter names (lora1, lora2, … : PEFT refuses dots), with
// a use count so an adapter being unloaded stays until the last request using it is done.
//
// Adapters given at start (by the operator) load from any folder. Adapters loaded at run
// time (POST /v1/load_lora_adapter) must lie inside adapterDir: the path is checked as
// written, then as resolved (realpath), and every entry of the folder must resolve inside
// too, so neither `..` nor a symbolic link leads out of it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BASE_ADAPTER } from '../lora/lora-linear.js';
import { PeftModel } from '../lora/peft-model.js';
import type { Module } from '../nn/module.js';
import { ApiError, badRequest } from './errors.js';
import type { RowAdapterSetter } from './scheduler.js';
import { loadAdapter } from '../lora/files.node.js';

export interface AdapterEntry {
  /** the name clients use */
  readonly name: string;
  /** the PeftModel's adapter name */
  readonly internal: string;
  /** the folder it was loaded from (resolved) */
  readonly path: string;
  /** unix seconds */
  readonly created: number;
  /** requests using it now */
  users: number;
  /** unload asked: hidden from clients, deleted once unused */
  unloading: boolean;
  waiters: (() => void)[];
}

const MAX_NAME = 256;

export class AdapterRegistry {
  readonly model: Module;
  /** the base model's public name (no adapter may take it) */
  readonly baseName: string;
  /** adapterDir as given (resolved) and as its real path; null: run-time loading disabled */
  private readonly dirGiven: string | null;
  private readonly dirReal: string | null;
  private peftModel: PeftModel | null = null;
  private readonly entries = new Map<string, AdapterEntry>();
  private counter = 0;

  constructor(model: Module, opts: { baseName: string; adapterDir?: string | null | undefined }) {
    this.model = model;
    this.baseName = opts.baseName;
    if (opts.adapterDir) {
      this.dirGiven = path.resolve(opts.adapterDir);
      try {
        this.dirReal = fs.realpathSync(this.dirGiven);
      } catch (e) {
        throw new Error(`serve: adapterDir ${opts.adapterDir} cannot be resolved: ${(e as Error).message}`);
      }
      if (!fs.statSync(this.dirReal).isDirectory()) throw new Error(`serve: adapterDir ${opts.adapterDir} is not a directory`);
    } else {
      this.dirGiven = null;
      this.dirReal = null;
    }
  }

  /** the PeftModel, once an adapter was loaded */
  get peft(): PeftModel | null {
    return this.peftModel;
  }

  /** adapters clients may use, in load order */
  list(): AdapterEntry[] {
    return [...this.entries.values()].filter((e) => !e.unloading);
  }

  /** the adapter of a public name, or null (unknown or being unloaded) */
  get(name: string): AdapterEntry | null {
    const e = this.entries.get(name);
    return e && !e.unloading ? e : null;
  }

  acquire(e: AdapterEntry): void {
    e.users++;
  }

  release(e: AdapterEntry): void {
    e.users--;
    if (e.users === 0) for (const w of e.waiters.splice(0)) w();
  }

  /** For the scheduler: per-row adapter names (null entries run the base). */
  readonly setRowAdapters: RowAdapterSetter = (names) => {
    const peft = this.peftModel;
    if (!peft) return;
    if (names === null || names.every((n) => n === null)) peft.setAdapterNames(null);
    else peft.setAdapterNames(names.map((n) => n ?? BASE_ADAPTER));
  };

  /** Loads an adapter the operator named at start (any folder). */
  loadTrusted(name: string, dir: string): AdapterEntry {
    return this.loadFolder(name, path.resolve(dir));
  }

  /** Loads an adapter a client asked for: lora_path must resolve inside adapterDir. */
  loadFromRequest(name: unknown, loraPath: unknown): AdapterEntry {
    const n = this.checkName(name);
    const dir = this.checkPath(loraPath);
    return this.loadFolder(n, dir);
  }

  /** Removes an adapter once no request uses it (new requests get 404 from now on). */
  async unload(name: unknown): Promise<void> {
    if (typeof name !== 'string' || name === '') throw badRequest('lora_name must be a non-empty string', 'lora_name');
    const e = this.entries.get(name);
    if (!e || e.unloading) throw new ApiError(404, `no LoRA adapter named ${JSON.stringify(name)} is loaded`, { param: 'lora_name', code: 'adapter_not_found' });
    e.unloading = true;
    if (e.users > 0) await new Promise<void>((res) => e.waiters.push(res));
    this.peftModel!.deleteAdapter(e.internal);
    this.entries.delete(name);
  }

  private checkName(name: unknown): string {
    if (typeof name !== 'string' || name.trim() === '') throw badRequest('lora_name must be a non-empty string', 'lora_name');
    if (name.length > MAX_NAME) throw badRequest(`lora_name is longer than ${MAX_NAME} characters`, 'lora_name');
    if (/[\u0000-\u001f\u007f]/.test(name)) throw badRequest('lora_name must not contain control characters', 'lora_name');
    return name;
  }

  /** The real folder of a client's lora_path, or ApiError 403 (outside adapterDir) / 400. */
  private checkPath(p: unknown): string {
    if (!this.dirGiven || !this.dirReal) {
      throw new ApiError(403, 'loading adapters at run time is disabled (start the server with an adapter directory)', { param: 'lora_path', code: 'runtime_loading_disabled' });
    }
    if (typeof p !== 'string' || p === '') throw badRequest('lora_path must be a non-empty string', 'lora_path');
    if (p.includes('\u0000')) throw badRequest('lora_path must not contain NUL characters', 'lora_path');
    const outside = (): ApiError => new ApiError(403, 'lora_path must be a folder inside the server\'s adapter directory', { param: 'lora_path', code: 'path_not_allowed' });
    // as written (relative paths are taken from adapterDir): no `..` out of it
    const given = path.resolve(this.dirGiven, p);
    if (!inside(this.dirGiven, given) && !inside(this.dirReal, given)) throw outside();
    let real: string;
    try {
      real = fs.realpathSync(given);
    } catch {
      throw badRequest(`no adapter folder at lora_path ${JSON.stringify(p)}`, 'lora_path', 'adapter_not_found');
    }
    // as resolved: no symbolic link out of it, for the folder or anything in it
    if (!inside(this.dirReal, real)) throw outside();
    if (!fs.statSync(real).isDirectory()) throw badRequest(`lora_path ${JSON.stringify(p)} is not a folder`, 'lora_path');
    for (const entry of fs.readdirSync(real)) {
      let r: string;
      try {
        r = fs.realpathSync(path.join(real, entry));
      } catch {
        continue; // a dangling link reads as absent
      }
      if (!inside(this.dirReal, r)) throw outside();
    }
    return real;
  }

  private loadFolder(name: string, dir: string): AdapterEntry {
    if (name === this.baseName) throw badRequest(`${JSON.stringify(name)} is the base model's name`, 'lora_name');
    if (this.entries.has(name)) throw badRequest(`the LoRA adapter ${JSON.stringify(name)} is already loaded`, 'lora_name', 'adapter_exists');
    if (!this.peftModel) {
      this.model.requiresGrad(false);
      this.peftModel = new PeftModel(this.model);
    }
    const peft = this.peftModel;
    const internal = `lora${++this.counter}`;
    let problem: string | null = null;
    try {
      const cfg = loadAdapter(peft, dir, internal);
      if (cfg.use_dora) problem = 'DoRA adapters cannot be served per row (PEFT refuses them in mixed batches too)';
      else if (cfg.modules_to_save && cfg.modules_to_save.length) problem = 'adapters with modules_to_save cannot be served per row';
    } catch (e) {
      throw badRequest(`loading the LoRA adapter ${JSON.stringify(name)} failed: ${(e as Error).message}`, 'lora_path', 'adapter_load_failed');
    }
    if (problem) {
      peft.deleteAdapter(internal);
      throw badRequest(`the LoRA adapter ${JSON.stringify(name)}: ${problem}`, 'lora_path', 'adapter_not_supported');
    }
    const e: AdapterEntry = { name, internal, path: dir, created: Math.floor(Date.now() / 1000), users: 0, unloading: false, waiters: [] };
    this.entries.set(name, e);
    return e;
  }
}

/** Whether p is root or below it (both absolute and normalized). */
function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}
