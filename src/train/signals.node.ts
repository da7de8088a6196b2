// The one signal path of a training command (docs/ARCHITECTURE.md §Files written and signals):
// the first SIGINT or SIGTERM asks the loop to stop (TrainOptions.stop); it finishes the step
// under way, writes a checkpoint, and the command saves its result and exits 130 / 143. The
// handlers stay installed until the command's last file is written, so a Ctrl-C during the
// final save does not lose the run. A second signal quits at once: every file is written
// atomically, so what is on disk is the previous checkpoint, whole.

export interface Interrupt {
  /** pass as TrainOptions.stop */
  readonly stop: { readonly aborted: boolean };
  /** the signal received, or null */
  readonly signal: NodeJS.Signals | null;
  /** the exit code for the signal received (130 for SIGINT, 143 for SIGTERM), or null */
  readonly exitCode: number | null;
  /** removes the handlers */
  dispose(): void;
}

const CODES: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

export function onInterrupt(opts: { write?: (line: string) => void } = {}): Interrupt {
  const write = opts.write ?? ((l: string) => process.stderr.write(l + '\n'));
  let received: NodeJS.Signals | null = null;
  const handler = (sig: NodeJS.Signals): void => {
    if (received !== null) {
      write(`lorakit: ${sig} again; quitting without saving (the last checkpoint on disk is intact)`);
      process.exit(CODES[sig] ?? 1);
    }
    received = sig;
    write(`lorakit: ${sig}: finishing this step, then writing a checkpoint and the result (${sig === 'SIGINT' ? 'Ctrl-C' : sig} again to quit at once)`);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    stop: {
      get aborted() {
        return received !== null;
      },
    },
    get signal() {
      return received;
    },
    get exitCode() {
      return received === null ? null : (CODES[received] ?? 1);
    },
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
