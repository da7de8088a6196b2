// lorakit's layering, checked in `npm test` (tests/unit/layers.test.ts). Each layer may import
// only the layers listed for it (and, through them, what those may import); see
// docs/ARCHITECTURE.md §Layers. Node-only files are named *.node.ts (plus backend/native/ and
// the layers above the core: tasks, corpus, demo, serve, cli) and the core never imports them.

// layer → the layers its files may import (besides its own folder)
const ALLOWED = {
  tensor: [],
  backend: ['tensor'],
  io: ['tensor'],
  nn: ['tensor', 'backend'],
  models: ['nn', 'io', 'backend', 'tensor'],
  // adapters wrap a model: a family declares its default targets and module shapes (models/family.ts)
  lora: ['models', 'nn', 'io', 'backend', 'tensor'],
  data: ['io', 'tensor'],
  train: ['nn', 'lora', 'data', 'io', 'backend', 'tensor'],
  generate: ['models', 'lora', 'nn', 'io', 'backend', 'tensor'],
  serve: ['generate', 'lora', 'models', 'nn', 'io', 'backend', 'tensor'],
  // the classification task: its models, adapters, data and the loop
  tasks: ['train', 'models', 'lora', 'data', 'nn', 'io', 'backend', 'tensor'],
  // pretraining a model on the Brown corpus (the bundled model's recipe)
  corpus: ['train', 'generate', 'models', 'lora', 'data', 'nn', 'io', 'backend', 'tensor'],
  // the browser: the training worker, its client, models from URLs or picked files (it uses web APIs only)
  web: ['train', 'generate', 'models', 'lora', 'data', 'nn', 'io', 'backend', 'tensor'],
  demo: ['corpus', 'tasks', 'train', 'generate', 'models', 'lora', 'data', 'nn', 'io', 'backend', 'tensor'],
};
const CORE = ['tensor', 'backend', 'io', 'nn', 'models', 'lora', 'data', 'train', 'generate'];
const NODE_ONLY = '(\\.node\\.ts$|^src/backend/native/|^src/(cli|serve|demo|corpus|tasks)/)';
const others = (layer) => Object.keys(ALLOWED).concat('cli').filter((l) => l !== layer && !ALLOWED[layer].includes(l));

module.exports = {
  forbidden: [
    ...Object.keys(ALLOWED).map((layer) => ({
      name: `layer-${layer}`,
      comment: `${layer} may import only ${ALLOWED[layer].join(', ') || 'nothing outside itself'} (docs/ARCHITECTURE.md §Layers)`,
      severity: 'error',
      from: { path: `^src/${layer}/` },
      to: { path: `^src/(${others(layer).join('|')})/` },
    })),
    {
      name: 'entries-not-imported',
      comment: 'the entry points (index.ts, core.ts) are imported by nothing inside src: a layer imports the layer it needs',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(index|browser)\\.ts$' },
      to: { path: '^src/(index|core|browser)\\.ts$' },
    },
    {
      name: 'cli-imported-by-nothing',
      comment: 'the CLI is the top: no library file imports it',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'entries-only-public-api',
      comment: "the entry points re-export each layer's public API (its index.ts / index.node.ts), nothing deeper",
      severity: 'error',
      from: { path: '^src/(index|core|browser)\\.ts$' },
      to: { path: '^src/', pathNot: '^src/([a-z]+/index(\\.node)?\\.ts|core\\.ts|platform\\.node\\.ts|backend/native/select\\.ts|tasks/classify\\.ts)$' },
    },
    {
      name: 'core-entry-is-core',
      comment: 'src/core.ts (lorakit/core) builds for a browser: it imports no Node-only file',
      severity: 'error',
      from: { path: '^src/core\\.ts$' },
      to: { path: NODE_ONLY },
    },
    {
      name: 'browser-entry-no-node',
      comment: 'src/browser.ts (lorakit/browser) and the web layer run in a browser: no Node-only file',
      severity: 'error',
      from: { path: '^src/(browser\\.ts$|web/)', pathNot: NODE_ONLY },
      to: { path: NODE_ONLY },
    },
    {
      name: 'core-no-node-only-files',
      comment: 'the platform-neutral core imports no Node-only file (*.node.ts, backend/native/)',
      severity: 'error',
      from: { path: `^src/(${CORE.join('|')})/`, pathNot: NODE_ONLY },
      to: { path: NODE_ONLY },
    },
    {
      name: 'core-no-node-builtins',
      comment: 'the platform-neutral core imports no Node built-in; a file that needs one is Node-only (*.node.ts)',
      severity: 'error',
      from: { path: `^src/(${CORE.join('|')})/`, pathNot: NODE_ONLY },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'no-circular',
      comment: 'no import circles (a cycle means two files are one concept or an arrow runs the wrong way)',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
