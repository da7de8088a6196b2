// Training feedback in Node: a progress bar on a terminal (step, loss, learning rate, tokens/s,
// ETA) and plain log lines when the output is not a TTY (CI logs, files).
import cliProgress from 'cli-progress';
import { formatEta, formatStep, type Progress } from './progress.js';

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  /** plain mode: print every n-th step (default: about 20 lines per run) */
  every?: number;
  /** false: print nothing */
  enabled?: boolean;
}

export function createProgress(totalSteps: number, opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const start = Date.now();
  let startStep: number | null = null;
  const eta = (step: number): number => {
    if (startStep === null) startStep = step - 1;
    const done = step - startStep;
    const elapsed = (Date.now() - start) / 1000;
    return done > 0 ? (elapsed / done) * (totalSteps - step) : NaN;
  };
  if (opts.enabled === false) return { update() {}, log() {}, stop() {} };
  if (!stream.isTTY) {
    const every = opts.every ?? Math.max(1, Math.round(totalSteps / 20));
    return {
      update(info) {
        if (info.step % every === 0 || info.step === totalSteps || info.step === 1) stream.write(formatStep(info, eta(info.step)) + '\n');
      },
      log(line) {
        stream.write(line + '\n');
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: '{bar} step {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_text}',
      barsize: 24,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(totalSteps, 0, { loss: '-', lr: '-', tps: '-', eta_text: '?' });
  return {
    update(info) {
      bar.update(info.step, {
        loss: info.loss.toFixed(4),
        lr: info.lr.toExponential(2),
        tps: info.tokensPerSecond.toFixed(0),
        eta_text: formatEta(eta(info.step)),
      });
    },
    log(line) {
      // clear the bar's line, print, and let the next update redraw it. cli-progress restores
      // the cursor it saved at start when it stops; saving it again below the printed line
      // (ESC 7) keeps the final bar from being drawn over the lines printed while it ran
      stream.write('\r\x1b[2K' + line + '\n\x1b7');
    },
    stop() {
      bar.stop();
    },
  };
}
