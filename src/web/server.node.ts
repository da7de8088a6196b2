// `lorakit web`'s HTTP server (Node): the page and its bundle (dist/browser), a model folder's
// files under model/, demo datasets under demo/, and api/info saying what is there. Every
// answer is cross-origin isolated (COOP same-origin, COEP require-corp), so the page gets
// SharedArrayBuffer and a WebAssembly backend its threads. Loopback by default.
// See docs/ARCHITECTURE.md §Browser.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

export interface WebDataset {
  id: string;
  title: string;
  description: string;
  prompt: string;
  jsonl: string;
}

export interface WebServerOptions {
  /** the built page: index.html, app.js, worker.js, style.css (scripts/build-browser.mjs) */
  staticDir: string;
  /** the model folder served under model/ */
  modelDir: string;
  /** its name in the page and in adapters (base_model_name_or_path) */
  modelName: string;
  /** demo datasets, computed on first use */
  datasets: () => WebDataset[];
  host?: string;
  /** 0: any free port */
  port?: number;
}

const MODEL_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'model.safetensors', 'model.safetensors.index.json'];
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson; charset=utf-8',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
};
const ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Resource-Policy': 'same-origin' };

/** The model folder's files a browser needs: the known names, plus the shards its index lists. */
export function modelFileNames(dir: string): string[] {
  const names = MODEL_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
  if (!names.includes('config.json')) throw new Error(`web: ${dir} has no config.json (is it a Hugging Face model folder?)`);
  if (!names.includes('model.safetensors') && names.includes('model.safetensors.index.json')) {
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map?: Record<string, string> };
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) if (!/[\\/]/.test(shard) && fs.existsSync(path.join(dir, shard))) names.push(shard);
  }
  return names;
}

export interface WebServer {
  url: string;
  close(): Promise<void>;
}

export async function startWebServer(o: WebServerOptions): Promise<WebServer> {
  const modelFiles = new Set(modelFileNames(o.modelDir));
  let datasets: WebDataset[] | null = null;
  const getDatasets = (): WebDataset[] => (datasets ??= o.datasets());
  const staticFiles = new Set(fs.readdirSync(o.staticDir));

  const send = (res: http.ServerResponse, status: number, body: string | Buffer, type: string): void => {
    res.writeHead(status, { ...ISOLATION, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-cache' });
    res.end(body);
  };
  const sendFile = (res: http.ServerResponse, file: string, head: boolean): void => {
    const size = fs.statSync(file).size;
    res.writeHead(200, { ...ISOLATION, 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Content-Length': size, 'Cache-Control': 'no-cache' });
    if (head) res.end();
    else fs.createReadStream(file).pipe(res);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = decodeURIComponent(url.pathname);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n', 'text/plain');
    const head = req.method === 'HEAD';
    try {
      if (p === '/' || p === '/index.html') return sendFile(res, path.join(o.staticDir, 'index.html'), head);
      if (p === '/api/info') {
        const info = {
          model: { name: o.modelName, url: 'model/', files: [...modelFiles] },
          demos: getDatasets().map((d) => ({ id: d.id, title: d.title, description: d.description, prompt: d.prompt, url: `demo/${d.id}.jsonl` })),
        };
        return send(res, 200, JSON.stringify(info), TYPES['.json']!);
      }
      const model = /^\/model\/([^/]+)$/.exec(p);
      if (model && modelFiles.has(model[1]!)) return sendFile(res, path.join(o.modelDir, model[1]!), head);
      const demo = /^\/demo\/([a-z0-9-]+)\.jsonl$/.exec(p);
      const d = demo ? getDatasets().find((x) => x.id === demo[1]) : undefined;
      if (d) return send(res, 200, d.jsonl, TYPES['.jsonl']!);
      const name = p.slice(1);
      if (staticFiles.has(name)) return sendFile(res, path.join(o.staticDir, name), head);
      return send(res, 404, `not found: ${p}\n`, 'text/plain; charset=utf-8');
    } catch (e) {
      return send(res, 500, `error: ${(e as Error).message}\n`, 'text/plain; charset=utf-8');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8080, o.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
