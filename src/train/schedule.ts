// Learning-rate schedules with linear warmup, as Hugging Face's get_*_schedule_with_warmup:
// the rate at optimizer step `step` (0-based) is lr · factor(step); step 0 of a warmup
// has rate 0, exactly as there.
export type ScheduleKind = 'constant' | 'linear' | 'cosine';
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['constant', 'linear', 'cosine'];

export interface ScheduleOptions {
  kind: ScheduleKind;
  /** peak learning rate */
  lr: number;
  /** steps of linear warmup from 0 to lr */
  warmupSteps?: number;
  /** total optimizer steps (needed by linear and cosine) */
  totalSteps?: number;
  /** floor of the decay as a fraction of lr (cosine and linear); default 0 */
  minLrRatio?: number;
}

export function makeSchedule(opts: ScheduleOptions): (step: number) => number {
  const problems: string[] = [];
  if (!SCHEDULE_KINDS.includes(opts.kind)) problems.push(`schedule "${opts.kind}" is not one of ${SCHEDULE_KINDS.join(', ')}`);
  if (!(opts.lr > 0) || !Number.isFinite(opts.lr)) problems.push(`lr must be a positive number, got ${opts.lr}`);
  const warmup = opts.warmupSteps ?? 0;
  if (!Number.isInteger(warmup) || warmup < 0) problems.push(`warmup steps must be a non-negative integer, got ${warmup}`);
  const total = opts.totalSteps ?? 0;
  if (opts.kind !== 'constant' && (!Number.isInteger(total) || total <= 0)) problems.push(`schedule "${opts.kind}" needs totalSteps > 0, got ${opts.totalSteps}`);
  const floor = opts.minLrRatio ?? 0;
  if (!(floor >= 0 && floor <= 1)) problems.push(`minLrRatio must be in [0, 1], got ${floor}`);
  if (problems.length) throw new Error(`learning-rate schedule: ${problems.join('; ')}`);
  const { lr, kind } = opts;
  return (step: number): number => {
    if (step < warmup) return (lr * step) / warmup;
    if (kind === 'constant') return lr;
    const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
    const decay = kind === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
    return lr * (floor + (1 - floor) * decay);
  };
}
