// Reliability figures (docs/RELIABILITY.md), side by side in one run:
//  - cheap checks first: six requests at once, each a ~1 MiB array of short prompts, far over
//    the server's sequence limit. The server now refuses them before tokenizing anything; the
//    event loop stays free, so /health answers at once. For comparison, what one such array
//    costs to tokenize (what the server did per request before checking the count).
//  - oversized bodies: a body declared 64× over the cap with Expect: 100-continue gets its
//    413 without a 100 Continue (no body sent).
//
//   node dist/bench/reliability.js
import * as http from 'node:http';
import { pathToFileURL } from 'node:url';
import * as path from 'node:path';
import { BUNDLED_MODEL_DIR } from '../src/demo/demo.js';
import { loadTokenizer } from '../src/io/tokenizer.node.js';
import { installNodePlatform } from '../src/platform.node.js';
import { startServer } from '../src/serve/index.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

export async function runReliabilityBench(log: (l: string) => void = console.log): Promise<void> {
  const MAX_BODY = 2 << 20;
  const srv = await startServer({ model: BUNDLED_MODEL_DIR, port: 0, maxBodyBytes: MAX_BODY });
  try {
    const tok = loadTokenizer(BUNDLED_MODEL_DIR);
    const prompts = Array.from({ length: 40_000 }, (_, i) => `the cat sat on the mat ${i}`);
    const body = JSON.stringify({ model: path.basename(BUNDLED_MODEL_DIR), prompt: prompts });
    // what tokenizing one such array costs (the old order: tokenize, then count)
    const t0 = performance.now();
    for (const p of prompts) tok.encode(p);
    const encodeMs = performance.now() - t0;
    // /health while six arrive at once
    const health: number[] = [];
    let done = false;
    const probe = (async () => {
      while (!done) {
        const t = performance.now();
        await fetch(`${srv.url}/health`);
        health.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const t1 = performance.now();
    const statuses = await Promise.all(Array.from({ length: 6 }, () => fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(async (r) => (await r.text(), r.status))));
    const allMs = performance.now() - t1;
    done = true;
    await probe;
    log(`prompt arrays: ${(body.length / 2 ** 20).toFixed(2)} MiB, ${prompts.length} prompts each; 6 at once answered ${[...new Set(statuses)].join(',')} in ${allMs.toFixed(0)} ms (mostly receiving and parsing the JSON)`);
    log(`  /health meanwhile: ${health.length} probes, median ${median(health).toFixed(1)} ms, max ${Math.max(...health).toFixed(1)} ms`);
    log(`  tokenizing one such array (the old order, per request): ${encodeMs.toFixed(0)} ms of event loop; six: ~${((6 * encodeMs) / 1000).toFixed(1)} s`);
    // Expect: 100-continue over the cap
    const r = await new Promise<{ status: number; continued: boolean; ms: number }>((resolve, reject) => {
      const u = new URL(`${srv.url}/v1/completions`);
      const t = performance.now();
      let continued = false;
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(64 * MAX_BODY), expect: '100-continue' } });
      req.on('continue', () => (continued = true));
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode!, continued, ms: performance.now() - t });
        });
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    log(`Expect: 100-continue, ${(64 * MAX_BODY) / 2 ** 20} MiB declared: ${r.status} in ${r.ms.toFixed(1)} ms, 100 Continue sent: ${r.continued}, body bytes sent: 0`);
  } finally {
    await srv.close(1000);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  installNodePlatform();
  await runReliabilityBench();
}
