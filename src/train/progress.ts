// Training feedback: what the trainer reports each step, and its one-line form. The progress
// bar on a terminal is in progress.node.ts.

export interface StepInfo {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
}

export interface Progress {
  update(info: StepInfo): void;
  /** a line that must not be overwritten by the bar (evaluations, warnings) */
  log(line: string): void;
  stop(): void;
}

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

export function formatStep(info: StepInfo, etaSeconds: number): string {
  return `step ${info.step}/${info.totalSteps} | loss ${info.loss.toFixed(4)} | lr ${info.lr.toExponential(2)} | ${info.tokensPerSecond.toFixed(0)} tok/s | ETA ${formatEta(etaSeconds)}`;
}
