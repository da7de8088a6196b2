// An HTTP server for one base model and many LoRA adapters, speaking the OpenAI API as vLLM
// exposes it (node:http, no framework):
//
//   GET  /health                       200 while serving (503 while shutting down); no key needed
//   GET  /v1/models                    the base model and the adapters (OpenAI list shape)
//   POST /v1/completions               `model` names the base or an adapter; stream → SSE
//   POST /v1/chat/completions          the same, over the tokenizer's chat template
//   POST /v1/load_lora_adapter         {lora_name, lora_path}: a folder inside adapterDir
//   POST /v1/unload_lora_adapter       {lora_name}
//
// Requests go to the Scheduler (continuous batching, one adapter per batch row). Limits: a
// bounded queue (429 + Retry-After), a body size cap (413), a max_tokens cap (400), an
// optional API key (401). Errors use OpenAI's shape {"error": {message, type, param, code}}.
// A client that goes away (stream closed) frees its rows at the next step; close() stops
// accepting, lets running requests finish within a grace period, then fails the rest.
import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { FinishReason } from '../generate/generate.js';
import { Tokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/causal-lm.js';
import { loadModel } from '../models/load.node.js';
import { AdapterRegistry, type AdapterEntry } from './adapters.js';
import { ApiError, badRequest, toApiError } from './errors.js';
import { JobCancelledError, Scheduler, type SequenceEvent, type SequenceResult, type SequenceSpec } from './scheduler.js';
import { asObject, parseChatRequest, parseCompletionRequest, type GenerationRequest, type ValidationContext } from './validate.js';
import { loadTokenizer } from '../io/tokenizer.node.js';

export interface ServeOptions {
  /** the base model's folder (config.json, weights, tokenizer files) */
  model: string;
  /** the base model's public name (default: the folder's name) */
  servedModelName?: string;
  /** adapters to load at start: public name → PEFT (or mlx-lm) adapter folder */
  adapters?: Readonly<Record<string, string>>;
  /** default 127.0.0.1 */
  host?: string;
  /** default 8000; 0 picks a free port */
  port?: number;
  /** require `Authorization: Bearer <apiKey>` on /v1/* (default: no key) */
  apiKey?: string | null;
  /** folder that /v1/load_lora_adapter may load from (default: run-time loading disabled) */
  adapterDir?: string | null;
  /** sequences decoded together (default 16) */
  maxBatch?: number;
  /** requests waiting for the batch before 429 (default 64) */
  maxQueue?: number;
  /** request body cap in bytes (default 1 MiB) */
  maxBodyBytes?: number;
  /** max_tokens cap per request (default 512) */
  maxTokens?: number;
  /** prompt + completion tokens at most (default: the model's max_position_embeddings) */
  maxModelLen?: number;
  /** how long close() lets running requests finish (default 10 s) */
  shutdownGraceMs?: number;
  /** a line per request and event (default: silent) */
  log?: (line: string) => void;
}

export interface LorakitServer {
  readonly http: http.Server;
  readonly scheduler: Scheduler;
  readonly adapters: AdapterRegistry;
  readonly model: CausalLM;
  readonly tokenizer: Tokenizer;
  readonly modelName: string;
  /** http://host:port once listening */
  readonly url: string;
  /** Starts listening; resolves with the URL. */
  listen(): Promise<string>;
  /** Stops accepting, finishes (or after the grace period fails) in-flight requests, closes. */
  close(graceMs?: number): Promise<void>;
}

/** Already loaded parts (tests, embedding): used instead of reading opts.model. */
export interface LoadedParts {
  model: CausalLM;
  tokenizer: Tokenizer;
}

const SSE_HEADERS = { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' };

/** Builds the server (loads the model, its tokenizer and the start adapters); not listening yet. */
export function createServer(opts: ServeOptions, loaded?: LoadedParts): LorakitServer {
  const modelDir = path.resolve(opts.model);
  const model = loaded?.model ?? loadModel(modelDir);
  let tokenizer: Tokenizer;
  if (loaded) tokenizer = loaded.tokenizer;
  else {
    try {
      tokenizer = loadTokenizer(modelDir);
    } catch (e) {
      throw new Error(`serve: the model folder ${modelDir} has no usable tokenizer (tokenizer.json): ${(e as Error).message}`);
    }
  }
  const modelName = opts.servedModelName ?? path.basename(modelDir);
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 8000;
  const maxBodyBytes = opts.maxBodyBytes ?? 1 << 20;
  const maxTokensCap = opts.maxTokens ?? 512;
  const grace = opts.shutdownGraceMs ?? 10_000;
  const log = opts.log ?? ((): void => undefined);
  const created = Math.floor(Date.now() / 1000);
  const maxPos = Number.isFinite(model.info.maxPositions) ? model.info.maxPositions : Number(model.config['max_position_embeddings'] ?? 2048);
  const maxModelLen = Math.min(opts.maxModelLen ?? Infinity, maxPos);
  if (!(Number.isInteger(maxTokensCap) && maxTokensCap >= 1)) throw new RangeError(`serve: maxTokens must be an integer ≥ 1, got ${maxTokensCap}`);
  if (!(Number.isInteger(maxBodyBytes) && maxBodyBytes >= 1)) throw new RangeError(`serve: maxBodyBytes must be an integer ≥ 1, got ${maxBodyBytes}`);

  const adapters = new AdapterRegistry(model, { baseName: modelName, adapterDir: opts.adapterDir ?? null });
  for (const [name, dir] of Object.entries(opts.adapters ?? {})) {
    try {
      adapters.loadTrusted(name, dir);
    } catch (e) {
      throw new Error(`serve: adapter ${JSON.stringify(name)} (${dir}): ${(e as Error).message}`);
    }
  }
  const scheduler = new Scheduler(model, { tokenizer, setRowAdapters: adapters.setRowAdapters, maxBatch: opts.maxBatch ?? 16, maxQueue: opts.maxQueue ?? 64 });
  const keyDigest = opts.apiKey ? sha256(opts.apiKey) : null;
  const vctx: ValidationContext = { baseName: modelName, adapters, tokenizer, vocabSize: model.info.vocabSize, maxTokensCap, maxModelLen, maxSequences: scheduler.maxBatch };
  let closing = false;
  let url = '';

  const server = http.createServer((req, res) => {
    const t0 = Date.now();
    res.on('finish', () => log(`${req.method} ${req.url} ${res.statusCode} ${Date.now() - t0} ms`));
    handle(req, res).catch((err: unknown) => sendError(res, toApiError(err)));
  });
  server.keepAliveTimeout = 5_000;
  // `Expect: 100-continue`: a body declared past the cap gets its 413 before the client sends
  // it (Node would otherwise answer 100 Continue to anything)
  server.on('checkContinue', (req, res) => {
    if (Number(req.headers['content-length'] ?? 0) > maxBodyBytes) {
      sendError(res, new ApiError(413, `the request body is larger than ${maxBodyBytes} bytes`, { code: 'request_too_large', headers: { Connection: 'close' } }));
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const route = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    if (closing) {
      res.setHeader('Connection', 'close');
      throw new ApiError(503, 'the server is shutting down', { code: 'shutting_down' });
    }
    if (route === '/health') {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, route);
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (!route.startsWith('/v1/')) throw new ApiError(404, `no route ${method} ${route}`, { code: 'not_found' });
    checkKey(req);
    const post = async (): Promise<Record<string, unknown>> => {
      if (method !== 'POST') throw methodNotAllowed(method, route);
      return asObject(await readJson(req, maxBodyBytes));
    };
    switch (route) {
      case '/v1/models':
        if (method !== 'GET') throw methodNotAllowed(method, route);
        sendJson(res, 200, { object: 'list', data: listModels() });
        return;
      case '/v1/completions':
        await generateRoute(res, parseCompletionRequest(await post(), vctx));
        return;
      case '/v1/chat/completions':
        await generateRoute(res, parseChatRequest(await post(), vctx));
        return;
      case '/v1/load_lora_adapter': {
        const b = await post();
        const e = adapters.loadFromRequest(b['lora_name'], b['lora_path']);
        log(`loaded adapter ${JSON.stringify(e.name)} from ${e.path}`);
        sendText(res, 200, `Success: LoRA adapter '${e.name}' added successfully.`);
        return;
      }
      case '/v1/unload_lora_adapter': {
        const b = await post();
        await adapters.unload(b['lora_name']);
        log(`unloaded adapter ${JSON.stringify(b['lora_name'])}`);
        sendText(res, 200, `Success: LoRA adapter '${String(b['lora_name'])}' removed successfully.`);
        return;
      }
      default:
        throw new ApiError(404, `no route ${method} ${route}`, { code: 'not_found' });
    }
  }

  function checkKey(req: http.IncomingMessage): void {
    if (!keyDigest) return;
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(h);
    if (!m || !timingSafeEqual(sha256(m[1]!.trim()), keyDigest)) {
      throw new ApiError(401, m ? 'incorrect API key' : 'missing API key: send Authorization: Bearer <key>', { code: 'invalid_api_key', headers: { 'WWW-Authenticate': 'Bearer' } });
    }
  }

  function listModels(): Record<string, unknown>[] {
    const base = { id: modelName, object: 'model', created, owned_by: 'lorakit', root: modelDir, parent: null, max_model_len: maxModelLen };
    return [base, ...adapters.list().map((a) => ({ id: a.name, object: 'model', created: a.created, owned_by: 'lorakit', root: a.path, parent: modelName, max_model_len: maxModelLen }))];
  }

  async function generateRoute(res: http.ServerResponse, r: GenerationRequest): Promise<void> {
    const specs: SequenceSpec[] = [];
    const baseSeed = r.seed ?? randomInt(2 ** 31);
    for (const prompt of r.prompts) {
      for (let i = 0; i < r.n; i++) {
        const spec: SequenceSpec = { prompt, adapter: r.adapter?.internal ?? null, maxTokens: r.maxTokens, sampling: r.sampling, seed: baseSeed + i, stopStrings: r.stop };
        if (r.ignoreEos) spec.stopTokenIds = [];
        specs.push(spec);
      }
    }
    const entry: AdapterEntry | null = r.adapter;
    if (entry) adapters.acquire(entry);
    const id = `${r.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const stream = r.stream ? new SseWriter(res, r, id, createdAt, specs.length) : null;
    let job;
    try {
      job = scheduler.submit(specs, stream ? (ev) => stream.token(ev) : undefined);
    } catch (e) {
      if (entry) adapters.release(entry);
      throw e;
    }
    const j = job;
    void j.results.then(
      () => entry && adapters.release(entry),
      () => entry && adapters.release(entry),
    );
    // the client went away before the answer was complete: free its rows
    res.on('close', () => {
      if (!res.writableFinished) j.cancel('client disconnected');
    });
    stream?.open();
    let results: SequenceResult[];
    try {
      results = await j.results;
    } catch (e) {
      if (e instanceof JobCancelledError) return; // nobody to answer
      if (stream) return stream.fail(toApiError(e));
      throw e;
    }
    const usage = usageOf(r, results);
    if (stream) return stream.finish(usage);
    const choices = results.map((s, index) =>
      r.kind === 'chat'
        ? { index, message: { role: 'assistant', content: s.text }, logprobs: null, finish_reason: finishReason(s.finishReason) }
        : { index, text: s.text, logprobs: null, finish_reason: finishReason(s.finishReason) },
    );
    sendJson(res, 200, { id, object: r.kind === 'chat' ? 'chat.completion' : 'text_completion', created: createdAt, model: r.model, choices, usage });
  }

  const api: LorakitServer = {
    http: server,
    scheduler,
    adapters,
    model,
    tokenizer,
    modelName,
    get url() {
      return url;
    },
    listen(): Promise<string> {
      return new Promise((resolve, reject) => {
        const onError = (e: Error): void => reject(e);
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          const a = server.address() as AddressInfo;
          url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
          log(`serving ${modelName} (${adapters.list().length} adapters) at ${url}`);
          resolve(url);
        });
      });
    },
    async close(graceMs = grace): Promise<void> {
      if (closing) return;
      closing = true;
      const closed = new Promise<void>((res) => server.close(() => res()));
      server.closeIdleConnections();
      await scheduler.shutdown(graceMs);
      // answers are written by now; give sockets a moment to drain, then drop what is left
      await new Promise((res) => setTimeout(res, 20));
      server.closeAllConnections();
      await closed;
    },
  };
  return api;
}

/** createServer, then listen. */
export async function startServer(opts: ServeOptions, loaded?: LoadedParts): Promise<LorakitServer> {
  const s = createServer(opts, loaded);
  await s.listen();
  return s;
}

// ---------------------------------------------------------------------------------------
// streaming

/** Writes a generation as server-sent events in OpenAI's chunk format. */
class SseWriter {
  private readonly started: boolean[];
  constructor(
    private readonly res: http.ServerResponse,
    private readonly r: GenerationRequest,
    private readonly id: string,
    private readonly created: number,
    count: number,
  ) {
    this.started = new Array<boolean>(count).fill(false);
  }

  open(): void {
    this.res.writeHead(200, SSE_HEADERS);
    this.res.flushHeaders();
    if (this.r.kind === 'chat') {
      // the assistant role first, for every choice (as OpenAI and vLLM send it)
      this.started.forEach((_, index) => this.send({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }));
    }
  }

  token(ev: SequenceEvent): void {
    if (ev.text === '' && !ev.finishReason) return;
    const fr = ev.finishReason ? finishReason(ev.finishReason) : null;
    if (this.r.kind === 'chat') this.send({ index: ev.seq, delta: ev.text === '' ? {} : { content: ev.text }, logprobs: null, finish_reason: fr });
    else this.send({ index: ev.seq, text: ev.text, logprobs: null, finish_reason: fr });
  }

  finish(usage: Usage): void {
    if (this.r.includeUsage) this.write({ ...this.head(), choices: [], usage });
    this.end();
  }

  fail(err: ApiError): void {
    this.write(err.body());
    this.end();
  }

  private head(): Record<string, unknown> {
    return { id: this.id, object: this.r.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: this.created, model: this.r.model };
  }

  private send(choice: Record<string, unknown>): void {
    const chunk: Record<string, unknown> = { ...this.head(), choices: [choice] };
    if (this.r.includeUsage) chunk['usage'] = null;
    this.write(chunk);
  }

  private write(obj: unknown): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    this.res.write(`data: ${JSON.stringify(obj)}\n\n`);
  }

  private end(): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    this.res.end('data: [DONE]\n\n');
  }
}

// ---------------------------------------------------------------------------------------
// helpers

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

function usageOf(r: GenerationRequest, results: readonly SequenceResult[]): Usage {
  const prompt = r.prompts.reduce((n, p) => n + p.length, 0);
  const completion = results.reduce((n, s) => n + s.tokens.length, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function finishReason(f: FinishReason): 'stop' | 'length' {
  return f === 'length' ? 'length' : 'stop';
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function methodNotAllowed(method: string, route: string): ApiError {
  return new ApiError(405, `${method} is not allowed on ${route}`, { code: 'method_not_allowed' });
}

function sendJson(res: http.ServerResponse, status: number, obj: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function sendText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: http.ServerResponse, err: ApiError): void {
  if (res.headersSent) {
    // a stream already under way: an error event, then the end
    if (!res.destroyed && !res.writableEnded) res.end(`data: ${JSON.stringify(err.body())}\n\ndata: [DONE]\n\n`);
    return;
  }
  sendJson(res, err.status, err.body(), { ...err.headers });
}

/**
 * Reads and parses a JSON body of at most `cap` bytes. A larger body is read to its end
 * (discarded; the connection then closes) so the client sees the 413 instead of a reset;
 * one far larger than the cap is cut off.
 */
function readJson(req: http.IncomingMessage, cap: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    const tooLarge = (): ApiError =>
      new ApiError(413, `the request body is larger than ${cap} bytes`, { code: 'request_too_large', headers: { Connection: 'close' } });
    const chunks: Buffer[] = [];
    let size = 0;
    let over = Number.isFinite(declared) && declared > cap;
    const hardLimit = cap * 16 + (1 << 20);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > cap) over = true;
      if (!over) chunks.push(c);
      else if (size > hardLimit) {
        reject(tooLarge());
        req.destroy();
      }
    });
    req.on('error', reject);
    req.on('end', () => {
      if (over) return reject(tooLarge());
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(badRequest(`the request body is not valid JSON: ${(e as Error).message}`));
      }
    });
  });
}
