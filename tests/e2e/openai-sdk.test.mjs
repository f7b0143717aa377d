// The tutorial, as our users run it: the official OpenAI SDK pointed at llmux
// with base_url "http://host:port" (no /v1) and api_key = the master key.
// Upstream is llmux-mock; every answer is compared with what the mock itself
// says for the same request, so the test proves llmux relays it unchanged.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import {
  startMock, startLlmux, mockDeployment, cleanupTempDirs, collectStream, request,
  MASTER_KEY, PROVIDER_KEY,
} from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'Say hello to the e2e suite' }];
let mock;
let proxy;
let client;

before(async () => {
  mock = await startMock();
  proxy = await startLlmux({
    model_list: [
      mockDeployment(mock, { name: 'gpt-4o', upstream: 'gpt-4o-mini' }),
      mockDeployment(mock, { name: 'paced', directives: { chunks: 4, interval_ms: 250 } }),
      mockDeployment(mock, { name: 'text-embedding-3-small', upstream: 'text-embedding-3-small' }),
      { model_name: 'local', litellm_params: { model: 'openai/local', mock_response: 'Hello from llmux' } },
    ],
    general_settings: { master_key: MASTER_KEY, max_request_size_mb: 4 },
  });
  // Exactly the tutorial: no /v1 in the base URL.
  client = new OpenAI({ apiKey: MASTER_KEY, baseURL: `http://127.0.0.1:${proxy.port}`, maxRetries: 0 });
});

after(async () => {
  await proxy?.stop();
  await mock?.stop();
  await cleanupTempDirs();
});

// What the mock answers when asked directly (model = the upstream name).
async function direct(path, body) {
  const r = await fetch(`${mock.url}/v1${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PROVIDER_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, `direct mock call ${path}`);
  return r.json();
}

async function directStream(body) {
  const s = await collectStream(mock.url, '/v1/chat/completions', body, { key: PROVIDER_KEY });
  assert.equal(s.status, 200);
  assert.ok(s.done, 'direct mock stream ends with [DONE]');
  return s;
}

test('chat.completions.create (non-stream) relays the upstream answer with the model substituted', async () => {
  const res = await client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
  const want = await direct('/chat/completions', { model: 'gpt-4o-mini', messages: MESSAGES });
  assert.equal(res.object, 'chat.completion');
  // The mock echoes the model it received: the upstream name, after "openai/" is stripped.
  assert.equal(res.model, 'gpt-4o-mini');
  assert.equal(res.choices.length, 1);
  assert.equal(res.choices[0].message.role, 'assistant');
  assert.equal(res.choices[0].message.content, want.choices[0].message.content);
  assert.ok(res.choices[0].message.content.length > 0);
  assert.equal(res.choices[0].finish_reason, 'stop');
  assert.deepEqual(
    { p: res.usage.prompt_tokens, c: res.usage.completion_tokens, t: res.usage.total_tokens },
    { p: want.usage.prompt_tokens, c: want.usage.completion_tokens, t: want.usage.total_tokens },
  );
  assert.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens);

  const last = await mock.last();
  assert.equal(last.method, 'POST');
  assert.match(last.path, /\/v1\/chat\/completions$/);
  assert.equal(JSON.parse(last.body).model, 'gpt-4o-mini');
});

test('chat.completions.create (stream) yields the same text, delta by delta', async () => {
  const full = await client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
  const stream = await client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, stream: true });
  let text = '';
  let contentDeltas = 0;
  let finish = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.model, 'gpt-4o-mini');
    const c = chunk.choices[0];
    if (c?.delta?.content) { text += c.delta.content; contentDeltas++; }
    if (c?.finish_reason) finish = c.finish_reason;
    assert.equal(chunk.usage ?? null, null, 'no usage chunk unless stream_options.include_usage');
  }
  assert.equal(text, full.choices[0].message.content);
  assert.equal(finish, 'stop');
  // Relayed event by event: as many content deltas as the mock sends.
  const want = await directStream({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true });
  const wantDeltas = want.chunks.filter((j) => j?.choices?.[0]?.delta?.content).length;
  assert.ok(wantDeltas >= 2, 'the mock streams the answer in several pieces');
  assert.equal(contentDeltas, wantDeltas);
  assert.equal(chunks, want.chunks.length);
});

test('stream deltas reach the client as the upstream sends them (no buffering)', async () => {
  // The mock sends the role chunk at once, then a piece every 250 ms.
  const t0 = Date.now();
  const stream = await client.chat.completions.create({ model: 'paced', messages: MESSAGES, stream: true });
  const at = [];
  let text = '';
  for await (const chunk of stream) {
    at.push(Date.now() - t0);
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, 'Hello! This is llmux-mock.');
  assert.ok(at[0] < 200, `the first event arrived after ${at[0]} ms`);
  for (let i = 1; i < at.length; i++) {
    assert.ok(at[i] - at[i - 1] >= 120, `events arrived bunched together: ${at.join(', ')} ms`);
  }
  assert.ok(at.at(-1) >= 1000, `the stream spanned the upstream's pacing: ${at.join(', ')} ms`);
});

test('stream_options.include_usage ends the stream with a usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o', messages: MESSAGES, stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const lastChunk = chunks.at(-1);
  assert.ok(lastChunk.usage, `last chunk has usage: ${JSON.stringify(lastChunk)}`);
  assert.deepEqual(lastChunk.choices, []);
  const want = await directStream({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true, stream_options: { include_usage: true } });
  const wantUsage = want.chunks.at(-1).usage;
  assert.equal(lastChunk.usage.prompt_tokens, wantUsage.prompt_tokens);
  assert.equal(lastChunk.usage.completion_tokens, wantUsage.completion_tokens);
  assert.equal(lastChunk.usage.total_tokens, wantUsage.total_tokens);
  assert.equal(chunks.filter((c) => c.usage).length, 1, 'exactly one usage chunk');
});

test('baseURL with /v1 works too', async () => {
  const v1 = new OpenAI({ apiKey: MASTER_KEY, baseURL: `http://127.0.0.1:${proxy.port}/v1`, maxRetries: 0 });
  const res = await v1.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
  assert.equal(res.model, 'gpt-4o-mini');
  const models = await v1.models.list();
  assert.ok(models.data.some((m) => m.id === 'gpt-4o'));
});

test('completions.create (legacy text completion)', async () => {
  const res = await client.completions.create({ model: 'gpt-4o', prompt: 'Say hello', max_tokens: 16 });
  const want = await direct('/completions', { model: 'gpt-4o-mini', prompt: 'Say hello', max_tokens: 16 });
  assert.equal(res.object, 'text_completion');
  assert.equal(res.model, 'gpt-4o-mini');
  assert.equal(res.choices[0].text, want.choices[0].text);
  assert.ok(res.choices[0].text.length > 0);
  assert.equal(res.usage.total_tokens, want.usage.total_tokens);
  const last = await mock.last();
  assert.match(last.path, /\/v1\/completions$/);
  assert.equal(JSON.parse(last.body).prompt, 'Say hello');
});

test('embeddings.create (the SDK asks for base64 and decodes it)', async () => {
  const input = ['first text', 'second text'];
  const res = await client.embeddings.create({ model: 'text-embedding-3-small', input });
  const want = await direct('/embeddings', { model: 'text-embedding-3-small', input, encoding_format: 'float' });
  assert.equal(res.object, 'list');
  assert.equal(res.data.length, 2);
  for (let i = 0; i < 2; i++) {
    assert.equal(res.data[i].index, i);
    const got = Array.from(res.data[i].embedding, Math.fround);
    const exp = want.data[i].embedding.map(Math.fround);
    assert.ok(got.length > 0);
    assert.deepEqual(got, exp, `embedding ${i}`);
  }
  assert.equal(res.usage.prompt_tokens, want.usage.prompt_tokens);
  const last = await mock.last();
  assert.match(last.path, /\/v1\/embeddings$/);
  assert.deepEqual(JSON.parse(last.body).input, input);

  const floats = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'first text', encoding_format: 'float' });
  assert.deepEqual(floats.data[0].embedding.map(Math.fround), want.data[0].embedding.map(Math.fround));
});

test('models.list returns the configured model names; models.retrieve one', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id).sort();
  assert.deepEqual(ids, ['gpt-4o', 'local', 'paced', 'text-embedding-3-small']);
  for (const m of page.data) assert.equal(m.object, 'model');
  const one = await client.models.retrieve('gpt-4o');
  assert.equal(one.id, 'gpt-4o');
  await assert.rejects(client.models.retrieve('no-such-model'), (e) => e instanceof OpenAI.APIError && e.status >= 400 && e.status < 500);
});

test('the upstream request: provider key, substituted model, no Expect, unknown fields byte for byte', async () => {
  // Built by hand: 12345678901234567890 does not fit a JS number.
  const raw = '{"model":"gpt-4o","messages":[{"role":"user","content":"passthrough"}],'
    + '"foo_unknown":{"a":[1,2,3]},"seed":12345678901234567890,"temperature":0.25,'
    + '"metadata_x":"caf\\u00e9 \\"q\\" \u00fc"}';
  const r = await request(proxy.baseURL, '/chat/completions', { body: raw });
  assert.equal(r.status, 200, r.text);
  const last = await mock.last();
  assert.match(last.path, /\/v1\/chat\/completions$/);
  assert.equal(last.headers.authorization, `Bearer ${PROVIDER_KEY}`);
  for (const [k, v] of Object.entries(last.headers)) {
    assert.ok(!v.includes(MASTER_KEY), `the master key leaked upstream in header ${k}`);
  }
  assert.equal(last.headers.expect, undefined, 'llmux must not send Expect: 100-continue upstream');
  const body = last.body;
  assert.ok(body.includes('"foo_unknown":{"a":[1,2,3]}'), `unknown object passed through unchanged: ${body}`);
  assert.ok(body.includes('12345678901234567890'), `big integer passed through unchanged (not rounded): ${body}`);
  assert.ok(!body.includes(MASTER_KEY));
  const parsed = JSON.parse(body);
  assert.equal(parsed.model, 'gpt-4o-mini');
  assert.equal(parsed.temperature, 0.25);
  assert.equal(parsed.metadata_x, 'café "q" ü');
  assert.deepEqual(parsed.messages, [{ role: 'user', content: 'passthrough' }]);

  // A large body (libcurl adds Expect: 100-continue to big POSTs unless told not to).
  const big = 'x'.repeat(1_500_000);
  const rb = await request(proxy.baseURL, '/chat/completions', { body: { model: 'gpt-4o', messages: [{ role: 'user', content: big }] } });
  assert.equal(rb.status, 200, rb.text.slice(0, 500));
  const lastBig = await mock.last();
  assert.equal(lastBig.headers.expect, undefined, 'no Expect header on a 1.5 MB upstream request');
  assert.equal(JSON.parse(lastBig.body).messages[0].content.length, big.length);

  // And through the SDK: extra body fields reach the provider.
  await client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES, user: 'u-42', foo_unknown: { b: [true, null] } });
  const last2 = JSON.parse((await mock.last()).body);
  assert.deepEqual(last2.foo_unknown, { b: [true, null] });
  assert.equal(last2.user, 'u-42');
});

test('x-request-id is echoed, x-litellm-call-id is a fresh id per call; model headers name the deployment', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'gpt-4o', messages: MESSAGES }, { headers: { 'x-request-id': 'e2e-req-0042' } })
    .withResponse();
  assert.equal(data.model, 'gpt-4o-mini');
  assert.equal(response.headers.get('x-request-id'), 'e2e-req-0042');
  // The call id is llmux's own (it keys the spend-log row), whatever the client sends.
  assert.match(response.headers.get('x-litellm-call-id'), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(response.headers.get('x-litellm-model-group'), 'gpt-4o');
  assert.ok(response.headers.get('x-litellm-model-id'), 'x-litellm-model-id present');
  assert.equal(response.headers.get('x-litellm-model-api-base'), mock.apiBase());

  // Without x-request-id: a fresh id per request.
  const a = await client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES }).withResponse();
  const b = await client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES }).withResponse();
  const ida = a.response.headers.get('x-litellm-call-id');
  const idb = b.response.headers.get('x-litellm-call-id');
  assert.ok(ida && idb, 'x-litellm-call-id present');
  assert.notEqual(ida, idb);
  // The same deployment gets the same id; another deployment gets another.
  assert.equal(a.response.headers.get('x-litellm-model-id'), response.headers.get('x-litellm-model-id'));
  const e = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }).withResponse();
  assert.equal(e.response.headers.get('x-litellm-model-group'), 'text-embedding-3-small');
  assert.notEqual(e.response.headers.get('x-litellm-model-id'), response.headers.get('x-litellm-model-id'));

  // Streams carry the headers too.
  const s = await client.chat.completions
    .create({ model: 'gpt-4o', messages: MESSAGES, stream: true }, { headers: { 'x-request-id': 'e2e-stream-7' } })
    .withResponse();
  assert.equal(s.response.headers.get('x-request-id'), 'e2e-stream-7');
  assert.notEqual(s.response.headers.get('x-litellm-call-id'), 'e2e-stream-7');
  assert.equal(s.response.headers.get('x-litellm-model-group'), 'gpt-4o');
  for await (const _ of s.data) { /* drain */ }

  // Non-LLM responses carry a call id too.
  const h = await fetch(`${proxy.baseURL}/health`, { headers: { 'x-request-id': 'e2e-health-1' } });
  await h.arrayBuffer();
  assert.equal(h.headers.get('x-request-id'), 'e2e-health-1');
  assert.ok(h.headers.get('x-litellm-call-id'));
});

test('mock_response deployment answers without any upstream (non-stream and stream)', async () => {
  const before = (await mock.stats()).requests;
  const res = await client.chat.completions.create({ model: 'local', messages: MESSAGES });
  assert.equal(res.choices[0].message.content, 'Hello from llmux');
  assert.equal(res.choices[0].message.role, 'assistant');
  assert.equal(res.choices[0].finish_reason, 'stop');
  assert.ok(res.usage.total_tokens > 0);

  const stream = await client.chat.completions.create({ model: 'local', messages: MESSAGES, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, 'Hello from llmux');
  assert.ok(usage && usage.completion_tokens > 0, 'usage chunk for a mock_response stream');

  const raw = await collectStream(proxy.baseURL, '/v1/chat/completions', { model: 'local', messages: MESSAGES, stream: true });
  assert.equal(raw.status, 200);
  assert.match(raw.headers.get('content-type'), /^text\/event-stream/);
  assert.ok(raw.done, 'stream ends with data: [DONE]');
  assert.equal(raw.text, 'Hello from llmux');
  assert.equal((await mock.stats()).requests, before, 'no request reached the mock');
});

test('Azure-style clients: AzureOpenAI posts to /openai/deployments/{model}/... with an api-key header', async () => {
  const { AzureOpenAI } = await import('openai');
  const azure = new AzureOpenAI({
    endpoint: `http://127.0.0.1:${proxy.port}`,
    apiKey: MASTER_KEY,
    apiVersion: '2024-10-21',
    deployment: 'gpt-4o',
    maxRetries: 0,
  });
  const res = await azure.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
  assert.equal(res.object, 'chat.completion');
  assert.equal(res.model, 'gpt-4o-mini');
  const sent = JSON.parse((await mock.last()).body);
  assert.equal(sent.model, 'gpt-4o-mini');
  // The deployment in the path wins, as Azure's routing does.
  const r = await request(proxy.baseURL, '/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21', {
    key: null,
    headers: { 'api-key': MASTER_KEY },
    body: { messages: MESSAGES },
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-litellm-model-group'), 'gpt-4o');
  const unknown = await request(proxy.baseURL, '/openai/deployments/nope/chat/completions', {
    key: null,
    headers: { 'api-key': MASTER_KEY },
    body: { messages: MESSAGES },
  });
  assert.equal(unknown.status, 400);
  assert.match(unknown.json.error.message, /nope/);
});
