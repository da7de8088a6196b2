import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeServeFixture, startServer, type ServeFixture } from '../helpers/serve-fixture.js';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'lorakit.js');

describe('lorakit serve', () => {
  let fx: ServeFixture;
  before(async () => {
    fx = await makeServeFixture();
  });
  after(() => fx.cleanup());

  it('serves the base and named adapters on loopback, answers like offline generation, and stops on SIGTERM', async () => {
    const srv = await startServer(bin, ['--model', fx.modelDir, '--adapter', `a=${fx.adapterA}`, '--adapter', `b=${fx.adapterB}`]);
    const url = srv.url;
    let code: number | null;
    try {
      assert.equal((await fetch(`${url}/health`)).status, 200);
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
      assert.deepEqual(models.data.map((m) => m.id).sort(), ['a', 'b', 'tiny-llama']);
      const prompt = fx.tokenizer.encode(' the red cat');
      const res = (await (await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'a', prompt, max_tokens: 6, temperature: 0 }) })).json()) as { choices: { text: string }[] };
      assert.equal(res.choices[0]!.text, fx.offline('A', prompt, { maxNewTokens: 6 }).text);
    } finally {
      code = await srv.stop();
    }
    assert.equal(code, 0, srv.stderr());
    assert.match(srv.stderr(), /SIGTERM: finishing in-flight requests, then stopping/);
  });

  it('gives one clear line for an unnamed adapter or a bad port', () => {
    const unnamed = spawnSync(process.execPath, [bin, 'serve', '--model', fx.modelDir, '--adapter', fx.adapterA], { encoding: 'utf8' });
    assert.equal(unnamed.status, 2);
    assert.equal(unnamed.stderr.trim(), `lorakit: name each adapter: --adapter name=${fx.adapterA} (the name is what clients put in "model")`);
    const port = spawnSync(process.execPath, [bin, 'serve', '--model', fx.modelDir, '--port', '99999'], { encoding: 'utf8' });
    assert.equal(port.status, 2);
    assert.match(port.stderr, /--port must be an integer from 0 to 65535, got "99999"/);
  });
});
