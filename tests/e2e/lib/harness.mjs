// End-to-end harness: start build/llmux and build/llmux-mock as child
// processes, talk to them over real sockets, and clean up after ourselves.
//
// Every test file starts its own processes (ports are picked by the kernel:
// --port 0), so files can run in parallel. Processes still alive when this
// node process exits are killed with SIGKILL, and the temp dirs (config files,
// cwd of llmux) are removed unless LLMUX_E2E_KEEP_TMP is set.

import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const LLMUX_BIN = process.env.LLMUX_BIN || path.join(REPO, 'build/llmux');
export const MOCK_BIN = process.env.LLMUX_MOCK_BIN || path.join(REPO, 'build/llmux-mock');

export const MASTER_KEY = 'sk-1234';
export const PROVIDER_KEY = 'sk-upstream-secret-9f3a7c';

const START_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------
// Process bookkeeping

const live = new Set();
const tempDirs = new Set();

function killAll() {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
  if (!process.env.LLMUX_E2E_KEEP_TMP) {
    for (const d of tempDirs) {
      try { rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
    }
    tempDirs.clear();
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => { killAll(); process.exit(130); });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll fn() until it returns a truthy value; returns it. Throws after timeoutMs
// with the last value (or error) in the message.
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(intervalMs);
  }
}

// Resolves to {code, signal} when proc exits, or null after timeoutMs.
export function waitExit(proc, timeoutMs = 10_000) {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  }
  return new Promise((resolve) => {
    const t = setTimeout(() => { proc.off('exit', onExit); resolve(null); }, timeoutMs);
    function onExit(code, signal) { clearTimeout(t); resolve({ code, signal }); }
    proc.once('exit', onExit);
  });
}

// Spawn bin and wait until its stdout matches `ready`. Returns
// {proc, match, output(), stderr()}: output() is everything captured so far
// (stdout and stderr interleaved as they arrived), stderr() the logs alone.
function spawnReady(bin, args, { cwd, env, ready, name }) {
  const proc = spawn(bin, args, {
    cwd,
    env: { ...process.env, ...(env || {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  const chunks = [];
  const errChunks = [];
  let stdout = '';
  const output = () => chunks.join('');
  const stderr = () => errChunks.join('');
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { chunks.push(d); errChunks.push(d); });
  return new Promise((resolve, reject) => {
    const fail = (why) => {
      clearTimeout(timer);
      try { proc.kill('SIGKILL'); } catch { /* gone */ }
      reject(new Error(`${name} (${bin} ${args.join(' ')}) ${why}\n--- captured output ---\n${output()}`));
    };
    const timer = setTimeout(() => fail(`did not print its listening line within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    proc.once('error', (e) => fail(`failed to start: ${e.message}`));
    proc.once('exit', (code, signal) => fail(`exited before listening (code ${code}, signal ${signal})`));
    proc.stdout.on('data', (d) => {
      chunks.push(d);
      stdout += d;
      const m = stdout.match(ready);
      if (m && timer) {
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        proc.once('exit', () => live.delete(proc));
        resolve({ proc, match: m, output, stderr });
      }
    });
  });
}

// Under ASan/UBSan builds (LLMUX_SANITIZED=1) a report in a process's output
// fails the test that stops it, even when the process exited normally.
const SANITIZER_REPORT = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)/;

export function checkSanitizer(name, text) {
  if (SANITIZER_REPORT.test(text)) {
    throw new Error(`${name}: sanitizer report in its output:\n${text.slice(-8000)}`);
  }
}

async function stopChecked(name, proc, output, signal, timeoutMs) {
  const r = await stopProc(proc, signal, timeoutMs);
  checkSanitizer(name, output());
  return r;
}

async function stopProc(proc, signal = 'SIGTERM', timeoutMs = 10_000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode;
  proc.kill(signal);
  const r = await waitExit(proc, timeoutMs);
  if (r) return r.code ?? r.signal;
  proc.kill('SIGKILL');
  await waitExit(proc, 2000);
  throw new Error(`process ${proc.pid} did not exit within ${timeoutMs} ms of ${signal}; killed`);
}

// ---------------------------------------------------------------------------
// YAML (block style; strings are double-quoted JSON strings, which YAML accepts)

export function toYaml(value, indent = 0) {
  const pad = ' '.repeat(indent);
  const scalar = (v) => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (typeof v === 'bigint') return v.toString();
    throw new Error(`toYaml: unsupported ${typeof v}`);
  };
  const isComplex = (v) => v !== null && typeof v === 'object' && (Array.isArray(v) ? v.length : Object.keys(v).length);
  if (Array.isArray(value)) {
    if (!value.length) return `${pad}[]\n`;
    return value.map((item) => {
      if (isComplex(item)) {
        const inner = toYaml(item, indent + 2);
        return `${pad}- ${inner.slice(indent + 2)}`;
      }
      return `${pad}- ${Array.isArray(item) ? '[]' : typeof item === 'object' && item ? '{}' : scalar(item)}\n`;
    }).join('');
  }
  if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    if (!keys.length) return `${pad}{}\n`;
    return keys.map((k) => {
      const v = value[k];
      if (isComplex(v)) return `${pad}${k}:\n${toYaml(v, indent + 2)}`;
      if (Array.isArray(v)) return `${pad}${k}: []\n`;
      if (v && typeof v === 'object') return `${pad}${k}: {}\n`;
      return `${pad}${k}: ${scalar(v)}\n`;
    }).join('');
  }
  return `${pad}${scalar(value)}\n`;
}

// ---------------------------------------------------------------------------
// The mock

// Builds an api_base that applies mock directives to every request llmux sends
// through it, e.g. mockApiBase(mock, {status: 500}) ->
// http://127.0.0.1:PORT/mock/status=500/v1 (several directives are joined by
// ',' inside the one /mock/ segment).
export function mockApiBase(mock, directives = {}) {
  const parts = Object.entries(directives).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`);
  if (!parts.length) return `${mock.url}/v1`;
  return `${mock.url}/mock/${parts.join(',')}/v1`;
}

export async function startMock(args = []) {
  const { proc, match, output } = await spawnReady(MOCK_BIN, ['--port', '0', '--host', '127.0.0.1', ...args], {
    ready: /llmux-mock listening on ([\d.]+):(\d+)/,
    name: 'llmux-mock',
  });
  const port = Number(match[2]);
  const url = `http://127.0.0.1:${port}`;
  const getJson = async (p, init) => {
    const r = await fetch(url + p, init);
    const text = await r.text();
    if (!r.ok) throw new Error(`mock ${p}: ${r.status} ${text}`);
    return JSON.parse(text);
  };
  return {
    port,
    url,
    proc,
    logs: output,
    apiBase: (directives) => mockApiBase({ url }, directives),
    last: () => getJson('/mock/last'),
    stats: () => getJson('/mock/stats'),
    reset: async () => { const r = await fetch(url + '/mock/reset', { method: 'POST' }); await r.arrayBuffer(); },
    stop: (signal = 'SIGTERM') => stopChecked('llmux-mock', proc, output, signal, 10_000),
  };
}

// ---------------------------------------------------------------------------
// llmux

async function makeTempDir() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'llmux-e2e-'));
  tempDirs.add(dir);
  return dir;
}

// config: a YAML string, or an object serialised with toYaml().
export async function startLlmux(config, { workers = 2, env, extraArgs = [] } = {}) {
  const dir = await makeTempDir();
  const configPath = path.join(dir, 'config.yaml');
  const text = typeof config === 'string' ? config : toYaml(config);
  await writeFile(configPath, text);
  const args = ['--config', configPath, '--port', '0', '--host', '127.0.0.1', '--num_workers', String(workers), ...extraArgs];
  const { proc, match, output, stderr } = await spawnReady(LLMUX_BIN, args, {
    cwd: dir,
    env,
    ready: /llmux: listening on http:\/\/127\.0\.0\.1:(\d+)/,
    name: 'llmux',
  });
  const port = Number(match[1]);
  return {
    port,
    baseURL: `http://127.0.0.1:${port}`,
    proc,
    dir,
    configPath,
    logs: output,
    stderr,
    // Replace the config file (for SIGHUP reload tests).
    writeConfig: (c) => writeFile(configPath, typeof c === 'string' ? c : toYaml(c)),
    // Resolves to the exit code (or the signal name when killed by one).
    stop: (signal = 'SIGTERM', timeoutMs = 10_000) => stopChecked('llmux', proc, output, signal, timeoutMs),
  };
}

// Run llmux to completion (e.g. --check). The config is written into a fresh
// temp dir that is also the cwd. Returns {code, signal, stdout, stderr, configPath}.
export async function runLlmux(args, { config, env, timeoutMs = 10_000 } = {}) {
  const dir = await makeTempDir();
  const configPath = path.join(dir, 'config.yaml');
  if (config !== undefined) await writeFile(configPath, typeof config === 'string' ? config : toYaml(config));
  const finalArgs = args.map((a) => (a === '$CONFIG' ? configPath : a));
  const proc = spawn(LLMUX_BIN, finalArgs, { cwd: dir, env: { ...process.env, ...(env || {}) }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
  proc.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  const r = await waitExit(proc, timeoutMs);
  if (!r) {
    proc.kill('SIGKILL');
    throw new Error(`llmux ${finalArgs.join(' ')} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`);
  }
  // let the pipes drain
  await new Promise((res) => setImmediate(res));
  return { ...r, stdout, stderr, configPath, dir };
}

export async function cleanupTempDirs() {
  for (const d of tempDirs) await rm(d, { recursive: true, force: true }).catch(() => {});
  tempDirs.clear();
}

// A deployment answering from the mock. name: model_name; upstream: the model
// the mock receives (after the openai/ prefix is stripped).
export function mockDeployment(mock, { name = 'gpt-4o', upstream = 'gpt-4o-mini', directives, params = {} } = {}) {
  return {
    model_name: name,
    litellm_params: {
      model: `openai/${upstream}`,
      api_base: mockApiBase(mock, directives),
      api_key: PROVIDER_KEY,
      timeout: 5,
      stream_timeout: 2,
      ...params,
    },
  };
}

// ---------------------------------------------------------------------------
// HTTP helpers

export const authHeaders = (key = MASTER_KEY) => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json' });

export function chatBody(model, extra = {}) {
  return { model, messages: [{ role: 'user', content: 'Say hello' }], ...extra };
}

// fetch + JSON. Returns {status, headers, text, json}.
export async function request(baseURL, pathname, { method = 'POST', headers, body, key = MASTER_KEY, signal } = {}) {
  const h = { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(headers || {}) };
  const r = await fetch(baseURL + pathname, {
    method,
    headers: h,
    body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
    signal,
  });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, text, json };
}

// Parse an SSE byte stream (a fetch Response body) into events.
// Yields {event, data, raw} per event ('data' lines joined by '\n').
export async function* sseEvents(body) {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    for (;;) {
      const m = buf.match(/\r?\n\r?\n/);
      if (!m) break;
      const raw = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      const ev = { event: undefined, data: undefined, raw };
      const data = [];
      for (const line of raw.split(/\r?\n/)) {
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        let val = i < 0 ? '' : line.slice(i + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'data') data.push(val);
        else if (field === 'event') ev.event = val;
      }
      if (data.length) ev.data = data.join('\n');
      if (ev.data !== undefined || ev.event !== undefined) yield ev;
    }
  }
  if (buf.trim()) yield { event: undefined, data: undefined, raw: buf, incomplete: true };
}

// POST a streaming request with fetch and collect every event. Returns
// {status, headers, events: [data strings], chunks: [parsed JSON or null],
// done: saw [DONE], text: the concatenated delta content, error: parse/read
// error if the stream broke}.
export async function collectStream(baseURL, pathname, body, { key = MASTER_KEY, headers, signal } = {}) {
  const r = await fetch(baseURL + pathname, {
    method: 'POST',
    headers: { ...authHeaders(key), ...(headers || {}) },
    body: JSON.stringify(body),
    signal,
  });
  const out = { status: r.status, headers: r.headers, events: [], chunks: [], done: false, text: '', error: null };
  if (!(r.headers.get('content-type') || '').includes('text/event-stream')) {
    out.body = await r.text();
    try { out.json = JSON.parse(out.body); } catch { /* not JSON */ }
    return out;
  }
  try {
    for await (const ev of sseEvents(r.body)) {
      if (ev.incomplete) { out.incomplete = ev.raw; continue; }
      out.events.push(ev.data);
      if (ev.data === '[DONE]') { out.done = true; continue; }
      let j = null;
      try { j = JSON.parse(ev.data); } catch { /* keep null */ }
      out.chunks.push(j);
      const piece = j?.choices?.[0]?.delta?.content ?? j?.choices?.[0]?.text;
      if (typeof piece === 'string') out.text += piece;
    }
  } catch (e) {
    out.error = e;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Raw sockets

// A minimal HTTP/1.x client over one TCP connection: write arbitrary bytes,
// read responses one by one (Content-Length, chunked, or until close).
export class RawConn {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.closed = false;
    this.error = null;
    this.waiters = [];
    socket.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.#wake(); });
    socket.on('end', () => { this.ended = true; this.#wake(); });
    socket.on('error', (e) => { this.error = e; this.#wake(); });
    socket.on('close', () => { this.closed = true; this.ended = true; this.#wake(); });
    this.closedPromise = new Promise((res) => socket.once('close', res));
  }

  static connect(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host });
      s.once('connect', () => { s.off('error', reject); s.setNoDelay(true); resolve(new RawConn(s)); });
      s.once('error', reject);
    });
  }

  #wake() { const w = this.waiters; this.waiters = []; for (const f of w) f(); }

  #more(deadline) {
    if (this.ended || this.error) return Promise.resolve(false);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
      this.waiters.push(() => { clearTimeout(t); resolve(true); });
    });
  }

  write(data) {
    return new Promise((resolve, reject) => this.socket.write(data, (e) => (e ? reject(e) : resolve())));
  }

  // Resolves true once the peer closed (FIN or RST) within timeoutMs, false otherwise.
  async waitClosed(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && !this.error) {
      if (Date.now() >= deadline) return false;
      await this.#more(deadline);
    }
    return true;
  }

  // Read one response. Returns {status, reason, version, headers (lowercased
  // names; repeated names joined with ', '), body (Buffer), text}; throws on
  // timeout or when the connection closes before a complete response.
  async readResponse({ timeoutMs = 5000, head = false } = {}) {
    const deadline = Date.now() + timeoutMs;
    let idx;
    while ((idx = this.buf.indexOf('\r\n\r\n')) < 0) {
      if (this.ended || this.error) throw new Error(`connection closed before a response head (got ${JSON.stringify(this.buf.toString('latin1'))})`);
      if (Date.now() >= deadline) throw new Error(`timed out waiting for a response head (got ${JSON.stringify(this.buf.toString('latin1'))})`);
      await this.#more(deadline);
    }
    const headText = this.buf.subarray(0, idx).toString('latin1');
    this.buf = this.buf.subarray(idx + 4);
    const [statusLine, ...lines] = headText.split('\r\n');
    const m = statusLine.match(/^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(statusLine)}`);
    const headers = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      const k = l.slice(0, i).trim().toLowerCase();
      const v = l.slice(i + 1).trim();
      headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
    }
    const status = Number(m[2]);
    const res = { version: m[1], status, reason: m[3] || '', headers, body: Buffer.alloc(0) };
    const noBody = head || (status >= 100 && status < 200) || status === 204 || status === 304;
    if (!noBody) {
      if (/chunked/i.test(headers['transfer-encoding'] || '')) {
        const parts = [];
        for (;;) {
          let nl;
          while ((nl = this.buf.indexOf('\r\n')) < 0) {
            if (this.ended || Date.now() >= deadline) throw new Error('incomplete chunked body');
            await this.#more(deadline);
          }
          const size = parseInt(this.buf.subarray(0, nl).toString('latin1'), 16);
          if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(this.buf.subarray(0, nl).toString('latin1'))}`);
          while (this.buf.length < nl + 2 + size + 2) {
            if (this.ended || Date.now() >= deadline) throw new Error('incomplete chunk');
            await this.#more(deadline);
          }
          parts.push(this.buf.subarray(nl + 2, nl + 2 + size));
          if (size === 0) {
            // trailers: we only accept none (the final CRLF)
            this.buf = this.buf.subarray(nl + 2 + size + 2);
            break;
          }
          this.buf = this.buf.subarray(nl + 2 + size + 2);
        }
        res.body = Buffer.concat(parts);
      } else if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        while (this.buf.length < n) {
          if (this.ended || Date.now() >= deadline) throw new Error(`incomplete body: ${this.buf.length}/${n} bytes`);
          await this.#more(deadline);
        }
        res.body = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
      } else {
        while (!this.ended) {
          if (Date.now() >= deadline) throw new Error('timed out reading a close-delimited body');
          await this.#more(deadline);
        }
        res.body = this.buf;
        this.buf = Buffer.alloc(0);
      }
    }
    res.text = res.body.toString('utf8');
    try { res.json = JSON.parse(res.text); } catch { /* not JSON */ }
    return res;
  }

  close() { this.socket.destroy(); }
}

// Serialize one HTTP/1.1 request (Content-Length framing unless headers say otherwise).
export function rawRequest({ method = 'POST', path: p = '/chat/completions', headers = {}, body, version = '1.1', host = 'localhost' } = {}) {
  const b = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const h = { host, ...headers };
  const lower = Object.keys(h).map((k) => k.toLowerCase());
  if (b && !lower.includes('content-length') && !lower.includes('transfer-encoding')) h['content-length'] = String(b.length);
  const head = `${method} ${p} HTTP/${version}\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return b ? Buffer.concat([Buffer.from(head, 'latin1'), b]) : Buffer.from(head, 'latin1');
}

// ---------------------------------------------------------------------------
// Assertions shared by the test files

// An OpenAI-shaped error body with code = String(status).
export function assertOpenAIError(assert, res, status, { messageIncludes, param } = {}) {
  assert.equal(res.status, status, `status (body: ${res.text})`);
  assert.ok(res.json && typeof res.json === 'object', `JSON error body expected, got ${JSON.stringify(res.text)}`);
  const e = res.json.error;
  assert.ok(e && typeof e === 'object', `{"error":{...}} expected, got ${res.text}`);
  for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in e, `error.${k} missing in ${res.text}`);
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0, 'error.message is empty');
  assert.equal(e.code, String(status), `error.code (body: ${res.text})`);
  if (messageIncludes !== undefined) assert.ok(e.message.includes(messageIncludes), `error.message should mention ${JSON.stringify(messageIncludes)}: ${e.message}`);
  if (param !== undefined) assert.equal(e.param, param, `error.param (body: ${res.text})`);
}

export function assertNoSecrets(assert, text, where, secrets = [MASTER_KEY, PROVIDER_KEY]) {
  for (const s of secrets) {
    assert.ok(!text.includes(s), `${where} contains the secret ${JSON.stringify(s)}:\n${text.slice(Math.max(0, text.indexOf(s) - 300), text.indexOf(s) + 300)}`);
  }
}

// Open a streaming request and read it at the caller's pace.
// Returns {status, headers, next(): the next event's data (null at the end),
// rest(): {events, done, text, error} for everything still to come}.
export async function openStream(baseURL, pathname, body, { key = MASTER_KEY, headers, signal } = {}) {
  const r = await fetch(baseURL + pathname, {
    method: 'POST',
    headers: { ...authHeaders(key), ...(headers || {}) },
    body: JSON.stringify(body),
    signal,
  });
  const it = sseEvents(r.body)[Symbol.asyncIterator]();
  const seen = { events: [], text: '', done: false, error: null };
  const take = (data) => {
    seen.events.push(data);
    if (data === '[DONE]') { seen.done = true; return; }
    try {
      const j = JSON.parse(data);
      const piece = j?.choices?.[0]?.delta?.content ?? j?.choices?.[0]?.text;
      if (typeof piece === 'string') seen.text += piece;
      if (j?.error) seen.error = j.error;
    } catch { /* not JSON */ }
  };
  return {
    status: r.status,
    headers: r.headers,
    response: r,
    seen,
    async next() {
      const { value, done } = await it.next();
      if (done) return null;
      take(value.data);
      return value.data;
    },
    async rest() {
      try {
        for (;;) {
          const { value, done } = await it.next();
          if (done) break;
          take(value.data);
        }
      } catch (e) {
        seen.readError = e;
      }
      return seen;
    },
  };
}

// Resolves true if a TCP connect to port is refused (or reset) within timeoutMs.
export function connectRefused(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const t = setTimeout(() => { s.destroy(); resolve(false); }, timeoutMs);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(false); });
    s.once('error', () => { clearTimeout(t); resolve(true); });
  });
}
