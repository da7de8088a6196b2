// ARM64: the kernel sources cross-compiled with aarch64-linux-gnu-g++ (NEON: simd.h, the
// GEMM of gemm_simd.cc, the portable kernels vectorised by the compiler) and run under
// qemu-aarch64 against the reference, every kernel comparison; and the whole addon
// (N-API glue included) compiled and linked for aarch64 as a shared object. Without the
// tools the tests say so and skip; under CI a missing tool is a failure (.ci/run installs
// them: apt-get install g++-aarch64-linux-gnu qemu-user-static).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { packageRoot } from '../../src/backend/native/index.js';
import { createNativeBackend } from '../../src/backend/native/backend.js';
import { refBackend } from '../../src/backend/ref/index.js';
import { AARCH64_GXX, AARCH64_SYSROOT, QEMU, buildArmServer, missingArmTools, startKernelServer } from '../helpers/kernel-server.js';
import { registerComparisons } from './kernels-compare.js';

const missing = missingArmTools();
if (missing.length > 0) {
  const why = `missing ${missing.join(', ')} (apt-get install g++-aarch64-linux-gnu qemu-user-static)`;
  if (process.env.CI) it('ARM64 tools are installed (required under CI)', () => assert.fail(why));
  else it('ARM64 NEON kernels under qemu', { skip: why }, () => {});
} else {
  describe('ARM64 build', () => {
    it('the whole addon compiles and links for aarch64 (-shared, N-API symbols left to Node)', () => {
      const src = join(packageRoot(), 'native', 'src');
      const files = readdirSync(src).filter((f) => f.endsWith('.cc') && f !== 'shim_module.cc').map((f) => join(src, f));
      const nodeInclude = join(dirname(dirname(process.execPath)), 'include', 'node');
      const include = existsSync(join(nodeInclude, 'node_api.h')) ? nodeInclude : '/usr/include/node';
      const out = join(packageRoot(), 'build', 'aarch64', 'lorakit.node');
      const r = spawnSync(AARCH64_GXX, ['-O0', '-std=c++17', '-fPIC', '-shared', '-pthread', '-fno-exceptions', `-I${include}`, ...files, '-o', out], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${AARCH64_GXX} failed:\n${r.stderr}`);
      const file = spawnSync('file', [out], { encoding: 'utf8' });
      if (file.status === 0) assert.match(file.stdout, /aarch64/);
    });
  });
  const server = startKernelServer(buildArmServer(), [QEMU, '-L', AARCH64_SYSROOT]);
  after(() => server.close());
  it('the ARM64 build runs the NEON GEMM kernels', () => assert.equal(server.impl, 'neon'));
  registerComparisons(createNativeBackend(server.addon, refBackend, 'neon'), 'ARM64 NEON (qemu)');
}
