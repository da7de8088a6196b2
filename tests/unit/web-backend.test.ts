// The browser entry's backend choice (src/web/backend.ts, docs/ARCHITECTURE.md §WebGPU): 'auto'
// takes WebGPU when the adapter is not a fallback one, a fallback adapter only when asked, and
// says which and why in one line. Here with a fake navigator.gpu (its device is never
// dispatched to); tests/unit/webgpu.test.ts checks the same in Chromium with SwiftShader, a
// fallback adapter.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { getBackend, setBackend } from '../../src/backend/index.js';
import { installBrowserBackend, registerBrowserBackend, webGpuLoader } from '../../src/web/backend.js';

/** A GPU whose one adapter is a fallback one or not; its device only allocates. */
function fakeGpu(isFallbackAdapter: boolean): GPU {
  const limits = { maxStorageBufferBindingSize: 1 << 28, maxBufferSize: 1 << 28, maxStorageBuffersPerShaderStage: 8, maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 256 };
  const device = { createBuffer: () => ({ destroy() {} }), addEventListener() {}, lost: new Promise(() => {}), features: new Set(), queue: {} };
  const adapter = { info: { vendor: 'acme', architecture: 'gen9', description: 'Acme 9000', isFallbackAdapter }, features: new Set<string>(), limits, requestDevice: async () => device };
  return { requestAdapter: async () => adapter } as unknown as GPU;
}

describe('browser backend choice', () => {
  const before = getBackend();
  after(() => void setBackend(before));

  it("'auto' takes WebGPU on an adapter that is not a fallback one, before wasm", async () => {
    registerBrowserBackend('wasm', async () => {
      throw new Error('the page is not cross-origin isolated');
    });
    registerBrowserBackend('webgpu', webGpuLoader(fakeGpu(false)));
    const info = await installBrowserBackend('auto');
    assert.equal(info.name, 'webgpu');
    assert.equal(getBackend().name, 'webgpu');
    assert.equal(info.adapter, 'acme gen9 Acme 9000');
    assert.equal(info.notice, 'lorakit is running on webgpu (acme gen9 Acme 9000): the fastest that loaded');
  });

  it("'auto' passes over a fallback adapter, saying why, unless asked to allow one", async () => {
    registerBrowserBackend('webgpu', webGpuLoader(fakeGpu(true)));
    const info = await installBrowserBackend('auto');
    assert.equal(info.name, 'ref');
    assert.match(info.why, /^fallback: webgpu: WebGPU: only a fallback adapter \(acme gen9 Acme 9000\), slower than the CPU backends: allow it \(allowFallbackAdapter\) or choose webgpu by name; wasm: the page is not cross-origin isolated$/);
    assert.match(info.notice, /^lorakit is running on ref: fallback: webgpu: /);
    const allowed = await installBrowserBackend('auto', { allowFallbackAdapter: true });
    assert.equal(allowed.name, 'webgpu');
    assert.equal(allowed.notice, 'lorakit is running on webgpu (acme gen9 Acme 9000, a fallback adapter): the first that loaded (a fallback adapter allowed)');
    // asked for by name, a fallback adapter is taken
    assert.equal((await installBrowserBackend('webgpu')).name, 'webgpu');
  });

  it('without navigator.gpu, WebGPU is passed over and named in the reason', async () => {
    registerBrowserBackend('webgpu', webGpuLoader());
    const info = await installBrowserBackend('auto');
    assert.equal(info.name, 'ref');
    assert.match(info.why, /webgpu: WebGPU is not available here \(no navigator\.gpu\)/);
    await assert.rejects(installBrowserBackend('webgpu'), /no navigator\.gpu/);
  });
});
