// Launches headless Chromium with WebGPU on a page that runs a bundled test entry
// (tests/browser/*.ts, bundled with esbuild; node:test and node:assert/strict aliased to the
// shims in tests/browser/). The page is served from memory at http://localhost/ (a secure
// context, which WebGPU needs). Used by tests/unit/webgpu.test.ts and the WebGPU bench.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../..');

export interface PageResult {
  name: string;
  ok: boolean;
  skip?: string;
  error?: string;
  ms: number;
}

export interface WebGpuPage {
  info(): Promise<{ adapter?: string; fallback?: boolean; error?: string }>;
  run(filter: string): Promise<PageResult[]>;
  /** calls globalThis[fn](arg) in the page (a bench entry's function) */
  call<T>(fn: string, arg: unknown): Promise<T>;
  errors: string[];
  close(): Promise<void>;
}

export async function bundlePage(entry: string): Promise<string> {
  const out = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    alias: {
      'node:test': path.join(ROOT, 'tests/browser/node-test-shim.ts'),
      'node:assert/strict': path.join(ROOT, 'tests/browser/assert-shim.ts'),
    },
  });
  return out.outputFiles[0]!.text;
}

export async function launchWebGpuPage(entry: string, chromiumPath: string): Promise<WebGpuPage> {
  const js = await bundlePage(entry);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--enable-unsafe-webgpu'] });
  const errors: string[] = [];
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(600_000); // the machine may be shared; nothing here is timed
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      else if (process.env.LORAKIT_WEBGPU_VERBOSE) console.log(`# page: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    await page.route('http://localhost/**', (route) => {
      const url = new URL(route.request().url());
      if (url.pathname === '/page.js') return route.fulfill({ status: 200, contentType: 'text/javascript', body: js });
      return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><meta charset="utf-8"><title>lorakit webgpu tests</title><script type="module" src="/page.js"></script>' });
    });
    await page.goto('http://localhost/index.html');
    await page.waitForFunction(() => (globalThis as { lorakitTests?: unknown }).lorakitTests !== undefined);
    return {
      errors,
      info: () => page.evaluate(() => {
        const t = (globalThis as unknown as { lorakitTests: { adapter?: string; fallback?: boolean; error?: string } }).lorakitTests;
        return { adapter: t.adapter, fallback: t.fallback, error: t.error } as { adapter?: string; fallback?: boolean; error?: string };
      }),
      run: (filter) => page.evaluate((f) => (globalThis as unknown as { lorakitTests: { runAll(f: string): Promise<PageResult[]> } }).lorakitTests.runAll(f), filter),
      call: <T>(fn: string, arg: unknown) => page.evaluate(([f, a]) => (globalThis as unknown as Record<string, (a: unknown) => Promise<unknown>>)[f as string]!(a), [fn, arg] as const) as Promise<T>,
      close: () => browser.close(),
    };
  } catch (e) {
    await browser.close();
    throw e;
  }
}
