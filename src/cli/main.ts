// The `lorakit` command.
import { getBackend } from '../backend/index.js';

const args = process.argv.slice(2);
if (args[0] === 'backend') {
  const b = getBackend();
  console.log(`${b.name} (${b.threads} threads)`);
} else {
  console.error('lorakit: commands are being written; try `lorakit backend`');
  process.exitCode = 1;
}
