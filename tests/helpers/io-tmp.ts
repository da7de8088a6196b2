// Temporary folders for io tests, removed when the process exits.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made: string[] = [];
process.on('exit', () => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

export function tmpDir(prefix = 'lorakit-io-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Files in a folder, sorted, hidden ones included. */
export function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/** Builds a safetensors file from a header object and data bytes, exactly as given (no checks). */
export function rawSafetensors(header: unknown, data: Uint8Array | number[] = [], opts: { headerLength?: bigint; headerText?: string } = {}): Uint8Array {
  const json = Buffer.from(opts.headerText ?? JSON.stringify(header), 'utf8');
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, opts.headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}
