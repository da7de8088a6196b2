// The test runner is a Node entry point: scripts/run-tests.mjs loads this file first
// (node --import) so every test file runs with the backend and warnings lorakit's Node entry
// installs (the native addon when it loads; process.emitWarning). See docs/ARCHITECTURE.md
// §Platforms and entry points.
import { installNodePlatform } from '../../src/platform.node.js';

await installNodePlatform();
