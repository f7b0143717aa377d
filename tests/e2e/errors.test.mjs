// Failures, as clients see them: auth, bad requests, limits, and every way the
// upstream can fail (status, unreachable, timeout, garbage, reset, stall).
// Every error body must be OpenAI-shaped and none may carry a secret.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import OpenAI from 'openai';

import {
  startMock, startLlmux, mockDeployment, cleanupTempDirs, collectStream, request, chatBody, sleep,
  RawConn, rawRequest, assertOpenAIError, assertNoSecrets, PROVIDER_KEY,
} from './lib/harness.mjs';

// A distinctive master key, so that a leak cannot hide behind a common string.
const MASTER = 'sk-master-e2e-51f0c3d2';
const SECRETS = [MASTER, PROVIDER_KEY];
const MESSAGES = [{ role: 'user', content: 'Say hello' }];

let mock;
let proxy;
let client;
const errorBodies = []; // every error body seen, checked for secrets at the end

function sdk(opts = {}) {
  return new OpenAI({ apiKey: MASTER, baseURL: proxy.baseURL, maxRetries: 0, ...opts });
}

async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

// fetch wrapper that records error bodies
async function req(path, opts) {
  const r = await request(proxy.baseURL, path, { key: MASTER, ...opts });
  if (r.status >= 400) errorBodies.push(`${path} -> ${r.status}: ${r.text}`);
  return r;
}

function recordSdkError(e) {
  errorBodies.push(`sdk ${e?.status}: ${JSON.stringify(e?.error)} ${e?.message}`);
  return e;
}

before(async () => {
  mock = await startMock();
  const dead = await closedPort();
  proxy = await startLlmux({
    model_list: [
      mockDeployment(mock, { name: 'gpt-4o' }),
      mockDeployment(mock, { name: 'err500', directives: { status: 500, error_message: 'upstream_boom_500' } }),
      mockDeployment(mock, { name: 'err429', directives: { status: 429, retry_after: 7, error_message: 'upstream_slow_down_429' } }),
      mockDeployment(mock, { name: 'err400', directives: { status: 400, error_message: 'upstream_bad_request_400' } }),
      {
        model_name: 'unreachable',
        litellm_params: { model: 'openai/gpt-4o-mini', api_base: `http://127.0.0.1:${dead}/v1`, api_key: PROVIDER_KEY, timeout: 5 },
      },
      mockDeployment(mock, { name: 'slow', directives: { latency_ms: 10000 }, params: { timeout: 1 } }),
      // Directives as deployment headers (not in api_base, which llmux may log).
      mockDeployment(mock, {
        name: 'echokey',
        params: {
          extra_headers: {
            'x-mock-status': '401',
            'x-mock-error_message': `Incorrect API key provided: ${PROVIDER_KEY}. You can find your API key at https://platform.openai.com/account/api-keys.`,
          },
        },
      }),
      mockDeployment(mock, { name: 'garbage', directives: { malformed: 1 } }),
      mockDeployment(mock, { name: 'reset', directives: { reset_after: 2, chunks: 6, interval_ms: 20 } }),
      mockDeployment(mock, { name: 'stall', directives: { chunks: 3, interval_ms: 4000 }, params: { stream_timeout: 1 } }),
    ],
    general_settings: { master_key: MASTER, max_request_size_mb: 1 },
  }, { extraArgs: ['--detailed_debug'] });
  client = sdk();
});

after(async () => {
  await proxy?.stop();
  await mock?.stop();
  await cleanupTempDirs();
});

// ---------------------------------------------------------------------------
// Auth

test('auth: no key and a wrong key are 401; Bearer, api-key and x-api-key are accepted', async () => {
  const none = await req('/chat/completions', { key: null, body: chatBody('gpt-4o') });
  assertOpenAIError(assert, none, 401);
  const noneModels = await req('/v1/models', { key: null, method: 'GET' });
  assertOpenAIError(assert, noneModels, 401);

  const wrong = sdk({ apiKey: 'sk-wrong-key' });
  await assert.rejects(wrong.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES }), (e) => {
    recordSdkError(e);
    assert.ok(e instanceof OpenAI.AuthenticationError, `AuthenticationError expected, got ${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status, 401);
    return true;
  });
  await assert.rejects(wrong.models.list(), OpenAI.AuthenticationError);

  for (const h of ['api-key', 'x-api-key']) {
    const ok = await req('/chat/completions', { key: null, headers: { [h]: MASTER }, body: chatBody('gpt-4o') });
    assert.equal(ok.status, 200, `${h}: ${ok.text}`);
    assert.equal(ok.json.model, 'gpt-4o-mini');
    const bad = await req('/chat/completions', { key: null, headers: { [h]: 'sk-nope' }, body: chatBody('gpt-4o') });
    assertOpenAIError(assert, bad, 401);
  }
  // A prefix of the master key is not the master key.
  const prefix = await req('/chat/completions', { key: MASTER.slice(0, -1), body: chatBody('gpt-4o') });
  assertOpenAIError(assert, prefix, 401);
  // The upstream never saw the unauthenticated requests: the last one it saw came with the provider key.
  assert.equal((await mock.last()).headers.authorization, `Bearer ${PROVIDER_KEY}`);
});

// ---------------------------------------------------------------------------
// Bad requests

test('malformed JSON is 400 with an OpenAI-shaped error', async () => {
  for (const body of ['{"model": "gpt-4o", "messages": [', 'not json at all', '', '[1,2,3]', '"just a string"']) {
    const r = await req('/v1/chat/completions', { body: body === '' ? ' ' : body });
    assertOpenAIError(assert, r, 400);
  }
});

test('missing model / messages is 400 and error.param names the field', async () => {
  const noModel = await req('/chat/completions', { body: { messages: MESSAGES } });
  assertOpenAIError(assert, noModel, 400, { param: 'model' });
  const noMessages = await req('/chat/completions', { body: { model: 'gpt-4o' } });
  assertOpenAIError(assert, noMessages, 400, { param: 'messages' });
  await assert.rejects(client.chat.completions.create({ model: 'gpt-4o' }), (e) => {
    recordSdkError(e);
    assert.ok(e instanceof OpenAI.BadRequestError, `${e?.constructor?.name}: ${e?.message}`);
    return true;
  });
});

test('unknown model is 400 and the message names the model', async () => {
  const r = await req('/chat/completions', { body: chatBody('no-such-model-xyz') });
  assertOpenAIError(assert, r, 400, { messageIncludes: 'no-such-model-xyz' });
  await assert.rejects(client.embeddings.create({ model: 'no-such-embedder-q', input: 'x' }), (e) => {
    recordSdkError(e);
    assert.ok(e instanceof OpenAI.BadRequestError, `${e?.constructor?.name}: ${e?.message}`);
    assert.match(e.message, /no-such-embedder-q/);
    return true;
  });
});

test('unknown route is 404', async () => {
  assertOpenAIError(assert, await req('/v1/definitely/not/here', { body: {} }), 404);
  assertOpenAIError(assert, await req('/nope', { method: 'GET' }), 404);
});

test('wrong method is 405 with an Allow header', async () => {
  const g = await req('/v1/chat/completions', { method: 'GET' });
  assertOpenAIError(assert, g, 405);
  assert.match(g.headers.get('allow') || '', /\bPOST\b/, `Allow: ${g.headers.get('allow')}`);
  const d = await req('/v1/models', { method: 'DELETE' });
  assertOpenAIError(assert, d, 405);
  assert.match(d.headers.get('allow') || '', /\bGET\b/, `Allow: ${d.headers.get('allow')}`);
});

test('a body over max_request_size_mb is 413 (Content-Length and chunked)', async () => {
  const big = Buffer.from(JSON.stringify(chatBody('gpt-4o', { pad: 'x'.repeat(1_300_000) })));
  const c = await RawConn.connect(proxy.port);
  // Write the whole request; the server may answer (and close) before reading it all.
  c.write(rawRequest({ headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' }, body: big })).catch(() => {});
  const r = await c.readResponse({ timeoutMs: 5000 });
  errorBodies.push(r.text);
  assertOpenAIError(assert, r, 413);
  c.close();

  const c2 = await RawConn.connect(proxy.port);
  const head = rawRequest({ headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' } });
  const piece = Buffer.alloc(256 * 1024, 'y');
  const chunk = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
  c2.write(Buffer.concat([head, chunk, chunk, chunk, chunk, chunk, Buffer.from('0\r\n\r\n')])).catch(() => {});
  const r2 = await c2.readResponse({ timeoutMs: 5000 });
  errorBodies.push(r2.text);
  assertOpenAIError(assert, r2, 413);
  c2.close();

  // Just under the limit is fine.
  const ok = await req('/chat/completions', { body: chatBody('gpt-4o', { pad: 'z'.repeat(900_000) }) });
  assert.equal(ok.status, 200, ok.text.slice(0, 300));
});

test('headers over the limit are 431', async () => {
  const c = await RawConn.connect(proxy.port);
  c.write(rawRequest({ method: 'GET', path: '/v1/models', headers: { authorization: `Bearer ${MASTER}`, 'x-big': 'a'.repeat(40 * 1024) } })).catch(() => {});
  const r = await c.readResponse({ timeoutMs: 5000 });
  errorBodies.push(r.text);
  assert.equal(r.status, 431, `status ${r.status}: ${r.text}`);
  c.close();
  // Many small headers adding up to more than 32 KB.
  const many = {};
  for (let i = 0; i < 400; i++) many[`x-h-${i}`] = 'b'.repeat(100);
  const c2 = await RawConn.connect(proxy.port);
  c2.write(rawRequest({ method: 'GET', path: '/health', headers: many })).catch(() => {});
  const r2 = await c2.readResponse({ timeoutMs: 5000 });
  assert.equal(r2.status, 431, `status ${r2.status}: ${r2.text}`);
  c2.close();
});

// ---------------------------------------------------------------------------
// Upstream failures

// The upstream's status and message reach the client (shape and code: next test).
test('upstream 500 is relayed: status, message; SDK raises InternalServerError', async () => {
  const r = await req('/chat/completions', { body: chatBody('err500') });
  assert.equal(r.status, 500, r.text);
  assert.match(r.json?.error?.message ?? '', /upstream_boom_500/, r.text);
  await assert.rejects(client.chat.completions.create({ model: 'err500', messages: MESSAGES }), (e) => {
    recordSdkError(e);
    assert.ok(e instanceof OpenAI.InternalServerError, `${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status, 500);
    assert.match(e.message, /upstream_boom_500/);
    return true;
  });
  const s = await collectStream(proxy.baseURL, '/chat/completions', chatBody('err500', { stream: true }), { key: MASTER });
  errorBodies.push(s.body ?? s.events.join('\n'));
  assert.equal(s.status, 500, 'an upstream error before the stream started keeps its status');
  assert.match(s.body, /upstream_boom_500/);
});

test('upstream 429 is relayed with retry-after; SDK raises RateLimitError', async () => {
  const r = await req('/chat/completions', { body: chatBody('err429') });
  assert.equal(r.status, 429, r.text);
  assert.match(r.json?.error?.message ?? '', /upstream_slow_down_429/, r.text);
  let sdkErr;
  await assert.rejects(client.chat.completions.create({ model: 'err429', messages: MESSAGES }), (e) => {
    sdkErr = recordSdkError(e);
    assert.ok(e instanceof OpenAI.RateLimitError, `${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status, 429);
    return true;
  });
  // The upstream said Retry-After: 7; clients (and the SDK's own retry logic) rely on it.
  assert.equal(r.headers.get('retry-after'), '7', 'retry-after relayed');
  assert.equal(sdkErr.headers.get('retry-after'), '7');
});

// LiteLLM answers every error, relayed ones included, as
// {"error":{"message","type","param","code": "<status>"}}; clients switch on code.
test('relayed upstream errors have the proxy error shape: code = status as a string', async () => {
  for (const [model, status] of [['err500', 500], ['err429', 429], ['err400', 400]]) {
    assertOpenAIError(assert, await req('/chat/completions', { body: chatBody(model) }), status);
  }
});

// What OpenAI really answers to a bad key: "Incorrect API key provided: sk-...".
test('an upstream error that quotes the provider key does not reach the client with the key', async () => {
  const r = await req('/chat/completions', { body: chatBody('echokey') });
  assert.equal(r.status, 401, r.text);
  assertNoSecrets(assert, r.text, 'the relayed 401 body', SECRETS);
  assert.match(r.text, /Incorrect API key provided/);
  const s = await collectStream(proxy.baseURL, '/chat/completions', chatBody('echokey', { stream: true }), { key: MASTER });
  const all = (s.body ?? '') + s.events.join('\n');
  errorBodies.push(all);
  assert.equal(s.status, 401, all);
  assertNoSecrets(assert, all, 'the relayed 401 body (stream request)', SECRETS);
});

test('upstream 400 is relayed as 400; SDK raises BadRequestError', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'err400', messages: MESSAGES }), (e) => {
    recordSdkError(e);
    assert.ok(e instanceof OpenAI.BadRequestError, `${e?.constructor?.name}: ${e?.message}`);
    assert.match(e.message, /upstream_bad_request_400/);
    return true;
  });
});

test('upstream unreachable is 502, quickly', async () => {
  const t0 = Date.now();
  const r = await req('/chat/completions', { body: chatBody('unreachable') });
  assertOpenAIError(assert, r, 502);
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
  assert.ok(!r.text.includes(PROVIDER_KEY));
});

test('upstream timeout is 504 after about `timeout` seconds', async () => {
  const t0 = Date.now();
  const r = await req('/chat/completions', { body: chatBody('slow') });
  const ms = Date.now() - t0;
  assertOpenAIError(assert, r, 504);
  assert.ok(ms >= 900 && ms < 3500, `504 after ${ms} ms (timeout: 1 s)`);
  await assert.rejects(client.chat.completions.create({ model: 'slow', messages: MESSAGES }), (e) => {
    recordSdkError(e);
    assert.equal(e.status, 504);
    return true;
  });
});

test('a malformed upstream body is 502', async () => {
  const r = await req('/chat/completions', { body: chatBody('garbage') });
  assertOpenAIError(assert, r, 502);
  await assert.rejects(client.chat.completions.create({ model: 'garbage', messages: MESSAGES }), (e) => {
    recordSdkError(e);
    assert.equal(e.status, 502);
    return true;
  });
});

// The mock sends "data: {not json" after the first event, then carries on.
// Relaying it makes the SDK die on a JSON SyntaxError instead of an APIError;
// a failure after the stream started must end it with an error event.
test('a malformed upstream stream event ends the stream with an error event', async () => {
  const s = await collectStream(proxy.baseURL, '/chat/completions', chatBody('garbage', { stream: true }), { key: MASTER });
  errorBodies.push(s.events.join('\n') + (s.body ?? ''));
  assert.equal(s.status, 200);
  assert.ok(!s.events.includes('{not json'), `the malformed event was relayed to the client: ${JSON.stringify(s.events.slice(0, 3))}`);
  const err = s.chunks.find((j) => j && j.error);
  assert.ok(err, `an error event ends the stream: ${JSON.stringify(s.events)}`);
});

test('upstream reset mid-stream: the client gets the first deltas, then an error', async () => {
  const s = await collectStream(proxy.baseURL, '/chat/completions', chatBody('reset', { stream: true }), { key: MASTER });
  errorBodies.push(s.events.join('\n'));
  assert.equal(s.status, 200);
  assert.ok(s.text.length > 0, `some content arrived before the reset: ${JSON.stringify(s.events)}`);
  const errIdx = s.chunks.findIndex((j) => j && j.error);
  assert.ok(errIdx >= 0, `an error event ends the stream: ${JSON.stringify(s.events)}`);
  assert.equal(errIdx, s.chunks.length - 1, 'the error event is the last JSON event');
  const e = s.chunks[errIdx].error;
  for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in e, `error.${k} in ${JSON.stringify(e)}`);

  // The SDK surfaces it as a thrown error after yielding the first deltas.
  const stream = await client.chat.completions.create({ model: 'reset', messages: MESSAGES, stream: true });
  let text = '';
  await assert.rejects((async () => {
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  })(), (err) => { recordSdkError(err); return err instanceof Error; });
  assert.ok(text.length > 0, 'deltas before the error');
  const full = 'Hello! This is llmux-mock.';
  assert.ok(text.length < full.length, `the text is cut short: ${JSON.stringify(text)}`);
});

test('stream_timeout: an upstream silent longer than stream_timeout ends the stream with an error', async () => {
  // stream_timeout is 1 s; the mock pauses 4 s before each piece. Give up after 6 s.
  const t0 = Date.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 6000);
  const s = await collectStream(proxy.baseURL, '/chat/completions', chatBody('stall', { stream: true }), { key: MASTER, signal: ac.signal })
    .finally(() => clearTimeout(timer));
  const ms = Date.now() - t0;
  errorBodies.push(s.events.join('\n'));
  assert.equal(s.status, 200);
  assert.ok(s.chunks.some((j) => j && j.error), `an error event ends the stream (after ${ms} ms; events ${JSON.stringify(s.events.map((e) => e.slice(0, 80)))})`);
  assert.ok(ms < 3500, `the stream was ended after ${ms} ms (stream_timeout 1 s)`);
  assert.equal(s.text, '', 'no content came before the silence');

  // The SDK raises.
  const t1 = Date.now();
  const ac2 = new AbortController();
  const timer2 = setTimeout(() => ac2.abort(), 6000);
  try {
    const stream = await client.chat.completions.create({ model: 'stall', messages: MESSAGES, stream: true }, { signal: ac2.signal });
    await assert.rejects((async () => { for await (const _ of stream) { /* drain */ } })(), (e) => {
      recordSdkError(e);
      assert.ok(!ac2.signal.aborted, `the SDK stream was still open after 6 s: ${e}`);
      return true;
    });
  } finally {
    clearTimeout(timer2);
  }
  assert.ok(Date.now() - t1 < 3500, `the SDK saw the error after ${Date.now() - t1} ms`);
});

test('errors do not disturb concurrent good requests (20 good + 20 bad)', async () => {
  const good = Array.from({ length: 20 }, (_, i) => (i % 2
    ? client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `good ${i}` }] })
    : (async () => {
      let t = '';
      const st = await client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, stream: true });
      for await (const ch of st) t += ch.choices[0]?.delta?.content ?? '';
      return { stream: true, t };
    })()));
  const badKinds = [
    () => req('/chat/completions', { body: chatBody('err500') }),
    () => req('/chat/completions', { body: chatBody('unreachable') }),
    () => req('/chat/completions', { body: '{"model":' }),
    () => req('/chat/completions', { body: chatBody('no-such-model') }),
    () => collectStream(proxy.baseURL, '/chat/completions', chatBody('reset', { stream: true }), { key: MASTER }),
    () => req('/chat/completions', { key: 'sk-bad', body: chatBody('gpt-4o') }),
    () => req('/chat/completions', { body: chatBody('garbage') }),
    () => collectStream(proxy.baseURL, '/chat/completions', chatBody('err429', { stream: true }), { key: MASTER }),
  ];
  const bad = Array.from({ length: 20 }, (_, i) => badKinds[i % badKinds.length]());
  const [goodRes, badRes] = await Promise.all([Promise.allSettled(good), Promise.allSettled(bad)]);
  goodRes.forEach((r, i) => {
    assert.equal(r.status, 'fulfilled', `good request ${i} failed: ${r.reason}`);
    if (r.value.stream) assert.equal(r.value.t, 'Hello! This is llmux-mock.');
    else assert.equal(r.value.choices[0].message.content, 'Hello! This is llmux-mock.');
  });
  badRes.forEach((r, i) => assert.equal(r.status, 'fulfilled', `bad request ${i} should fail with an HTTP error, not a broken connection: ${r.reason}`));
  for (const r of badRes) {
    const v = r.value;
    if (v.events) assert.ok(v.status >= 400 || v.chunks.some((j) => j && j.error), `bad stream failed visibly: ${JSON.stringify(v.events)}`);
    else assert.ok(v.status >= 400, `bad request got ${v.status}`);
  }
  // And the server is still fine afterwards.
  const after = await client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
  assert.equal(after.choices[0].message.content, 'Hello! This is llmux-mock.');
});

test('no secret (master key, provider key) in any error body or in the logs', async () => {
  assert.ok(errorBodies.length >= 20, `the earlier tests collected error bodies (${errorBodies.length})`);
  for (const b of errorBodies) assertNoSecrets(assert, b, 'an error body', SECRETS);
  const logs = proxy.logs();
  assert.ok(logs.length > 0, 'llmux logged something');
  assertNoSecrets(assert, logs, "llmux's logs (--detailed_debug)", SECRETS);
});

async function jsonLogLines(extraArgs) {
  const j = await startLlmux({
    model_list: [
      mockDeployment(mock, { name: 'gpt-4o' }),
      mockDeployment(mock, { name: 'err500', directives: { status: 500 } }),
    ],
    general_settings: { master_key: MASTER },
    litellm_settings: { json_logs: true },
  }, { extraArgs });
  try {
    assert.equal((await request(j.baseURL, '/chat/completions', { key: MASTER, body: chatBody('gpt-4o') })).status, 200);
    assert.equal((await request(j.baseURL, '/chat/completions', { key: 'sk-wrong', body: chatBody('gpt-4o') })).status, 401);
    assert.equal((await request(j.baseURL, '/chat/completions', { key: MASTER, body: chatBody('err500') })).status, 500);
    const s = await collectStream(j.baseURL, '/chat/completions', chatBody('gpt-4o', { stream: true }), { key: MASTER });
    assert.ok(s.done);
    await sleep(100); // the access log line may trail the response a little
  } finally {
    assert.equal(await j.stop(), 0);
  }
  const text = j.stderr();
  const lines = text.split('\n').filter((l) => l.trim());
  assert.ok(lines.length >= 5, `log lines: ${lines.length}`);
  for (const l of lines) {
    let o;
    assert.doesNotThrow(() => { o = JSON.parse(l); }, `not JSON: ${l}`);
    assert.ok(o && typeof o === 'object' && !Array.isArray(o), `not an object: ${l}`);
    assert.equal(typeof o.level, 'string', `no level: ${l}`);
    assert.equal(typeof o.message, 'string', `no message: ${l}`);
  }
  assertNoSecrets(assert, text, 'json logs', SECRETS);
  return lines.map((l) => JSON.parse(l));
}

test('json_logs: every log line is a JSON object, and none carries a secret', async () => {
  const lines = await jsonLogLines([]);
  assert.ok(lines.some((o) => /POST \/chat\/completions/.test(o.message)), 'an access log line per request');
});

test('json_logs with --detailed_debug: still one JSON object per line', async () => {
  const lines = await jsonLogLines(['--detailed_debug']);
  assert.ok(lines.some((o) => o.level === 'DEBUG'), 'DEBUG lines are logged');
});
