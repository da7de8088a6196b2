// Serving many LoRA adapters over one base model: an OpenAI-compatible HTTP server and the
// continuous-batching scheduler under it.
export { createServer, startServer } from './server.js';
export type { ServeOptions, LorakitServer, LoadedParts } from './server.js';
export { Scheduler, Job, JobCancelledError } from './scheduler.js';
export type { SchedulerOptions, SchedulerStats, SequenceSpec, SequenceEvent, SequenceResult, RowAdapterSetter } from './scheduler.js';
export { AdapterRegistry } from './adapters.js';
export type { AdapterEntry } from './adapters.js';
export { ApiError } from './errors.js';
export type { ApiErrorBody, ApiErrorType } from './errors.js';
export { parseCompletionRequest, parseChatRequest } from './validate.js';
export type { GenerationRequest, ValidationContext } from './validate.js';
