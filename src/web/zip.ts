// Adapters as one download: a zip of the PEFT files (adapter_config.json,
// adapter_model.safetensors) made and read with fflate. Loading also takes the two files as
// picked. See docs/ARCHITECTURE.md §Browser.
import { unzipSync, zipSync } from 'fflate';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, type AdapterSource } from '../lora/files.js';

/** A zip of the adapter's files (stored, not deflated: safetensors bytes barely compress). */
export function zipAdapter(files: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const entries: Record<string, [Uint8Array, { level: 0 }]> = {};
  for (const [name, bytes] of files) entries[name] = [bytes, { level: 0 }];
  return zipSync(entries, { mtime: new Date(1980, 0, 1) });
}

/** The files of a zip, by base name (a zip of the adapter folder works too). */
export function unzipFiles(zip: Uint8Array, label = 'adapter.zip'): Map<string, Uint8Array> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(zip);
  } catch (e) {
    throw new Error(`${label}: not a zip file (${(e as Error).message})`);
  }
  const out = new Map<string, Uint8Array>();
  for (const [path, bytes] of Object.entries(entries)) if (!path.endsWith('/')) out.set(path.replace(/^.*\//, ''), bytes);
  return out;
}

/** An AdapterSource (for loadAdapterFiles) from files by name: the PEFT pair, or a zip holding it. */
export function adapterSource(files: ReadonlyMap<string, Uint8Array>, where: string): AdapterSource {
  let all = new Map(files);
  const zip = [...files.keys()].find((n) => n.endsWith('.zip'));
  if (zip && !files.has(ADAPTER_WEIGHTS_FILE)) all = unzipFiles(files.get(zip)!, zip);
  const missing = [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE].filter((n) => !all.has(n));
  if (missing.length) throw new Error(`adapter ${where}: missing ${missing.join(' and ')} (give the two PEFT files, or a zip holding them); got ${[...all.keys()].join(', ') || 'nothing'}`);
  return {
    dir: where,
    format: 'peft',
    configFile: `${where}/${ADAPTER_CONFIG_FILE}`,
    configText: new TextDecoder().decode(all.get(ADAPTER_CONFIG_FILE)!),
    weightsFile: `${where}/${ADAPTER_WEIGHTS_FILE}`,
    weights: all.get(ADAPTER_WEIGHTS_FILE)!,
  };
}
