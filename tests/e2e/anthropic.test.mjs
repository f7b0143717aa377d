// The tutorial's second model: a claude-* deployment served behind the OpenAI
// API. The OpenAI SDK must not be able to tell that Anthropic answered:
// content, usage, finish reasons, tool calls and streams are translated, and
// Anthropic's errors come back in OpenAI's shape.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startMock, startLlmux, mockApiBase, cleanupTempDirs, PROVIDER_KEY } from './lib/harness.mjs';

const MASTER = 'sk-anthropic-e2e-master';
let mock;
let proxy;
let client;

function claude(name, directives, params = {}) {
  // No provider prefix, as in the tutorial: the claude- family selects Anthropic.
  // The mock serves /v1/messages under api_base, like api.anthropic.com.
  const base = mockApiBase(mock, directives).replace(/\/v1$/, '');
  return {
    model_name: name,
    litellm_params: { model: 'claude-3-opus-20240229', api_base: base, api_key: PROVIDER_KEY, timeout: 5, ...params },
  };
}

before(async () => {
  mock = await startMock();
  proxy = await startLlmux({
    model_list: [
      claude('claude-3', undefined),
      claude('claude-tool', { tool: 'get_weather' }),
      claude('claude-overloaded', { status: 529 }),
      claude('claude-ratelimited', { status: 429, retry_after: 3 }),
      claude('claude-cached', { cache_read: 5, cache_creation: 2 }),
      claude('claude-chunks', { chunks: 4, interval_ms: 20 }),
    ],
    general_settings: { master_key: MASTER },
  });
  client = new OpenAI({ apiKey: MASTER, baseURL: proxy.baseURL, maxRetries: 0 });
});

after(async () => {
  await proxy?.stop();
  await mock?.stop();
  await cleanupTempDirs();
});

test('chat completion through Anthropic: content, usage, finish_reason, and the request upstream', async () => {
  const r = await client.chat.completions.create({
    model: 'claude-3',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hello!' },
    ],
    temperature: 0.2,
    frequency_penalty: 0.5, // OpenAI-only: must be dropped (the mock rejects unknown fields)
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, 'Hello! This is llmux-mock.');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.model, 'claude-3-opus-20240229');
  assert.ok(r.usage.prompt_tokens > 0);
  assert.equal(r.usage.completion_tokens, 4);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);

  const last = await mock.last();
  assert.equal(last.path.endsWith('/v1/messages'), true);
  assert.equal(last.headers['x-api-key'], PROVIDER_KEY);
  assert.ok(last.headers['anthropic-version']);
  assert.equal(last.headers.authorization, undefined);
  const sent = JSON.parse(last.body);
  assert.equal(sent.model, 'claude-3-opus-20240229');
  assert.ok(Number.isInteger(sent.max_tokens), 'max_tokens defaulted');
  assert.equal(sent.temperature, 0.2);
  assert.equal(sent.frequency_penalty, undefined);
  assert.equal(sent.messages.length, 1, 'the system message moved out of messages');
  assert.equal(sent.messages[0].role, 'user');
  const userText = typeof sent.messages[0].content === 'string'
    ? sent.messages[0].content
    : sent.messages[0].content.map((b) => b.text).join('');
  assert.equal(userText, 'Hello!');
  const system = typeof sent.system === 'string' ? sent.system : sent.system.map((b) => b.text).join('\n');
  assert.equal(system, 'You are terse.');
});

test('stream through Anthropic: deltas, final finish_reason and the usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'claude-chunks',
    messages: [{ role: 'user', content: 'Hello!' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let contentChunks = 0;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (choice.delta?.content) {
      text += choice.delta.content;
      contentChunks++;
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  assert.equal(text, 'Hello! This is llmux-mock.');
  assert.equal(contentChunks, 4);
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.completion_tokens > 0 && usage.prompt_tokens > 0);
});

test('tool calls through Anthropic, non-stream and stream', async () => {
  const tools = [{
    type: 'function',
    function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { location: { type: 'string' } } } },
  }];
  const r = await client.chat.completions.create({
    model: 'claude-tool', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, tool_choice: 'required',
  });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  const call = r.choices[0].message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { location: 'Paris' });
  const sent = JSON.parse((await mock.last()).body);
  assert.equal(sent.tools[0].name, 'get_weather');
  assert.ok(sent.tools[0].input_schema);
  assert.deepEqual(sent.tool_choice, { type: 'any' });

  const stream = await client.chat.completions.create({
    model: 'claude-tool', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools, stream: true,
  });
  let args = '';
  let name = null;
  let finish = null;
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta;
    for (const tc of d?.tool_calls ?? []) {
      if (tc.function?.name) name = tc.function.name;
      args += tc.function?.arguments ?? '';
    }
    if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(name, 'get_weather');
  assert.deepEqual(JSON.parse(args), { location: 'Paris' });
  assert.equal(finish, 'tool_calls');
});

test('cache tokens are part of prompt_tokens and reported as cached_tokens', async () => {
  const r = await client.chat.completions.create({ model: 'claude-cached', messages: [{ role: 'user', content: 'Hello!' }] });
  assert.equal(r.usage.prompt_tokens_details.cached_tokens, 5);
  const plain = await client.chat.completions.create({ model: 'claude-3', messages: [{ role: 'user', content: 'Hello!' }] });
  assert.equal(r.usage.prompt_tokens, plain.usage.prompt_tokens + 5 + 2);
});

test('Anthropic errors in OpenAI shape: 529 overloaded becomes 503, 429 keeps retry-after', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'claude-overloaded', messages: [{ role: 'user', content: 'Hi' }] }),
    (e) => e instanceof OpenAI.InternalServerError && e.status === 503 && typeof e.error?.message === 'string' && e.error?.code === '503',
  );
  const res = await fetch(`${proxy.baseURL}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'claude-ratelimited', messages: [{ role: 'user', content: 'Hi' }] }),
  });
  assert.equal(res.status, 429);
  assert.equal(res.headers.get('retry-after'), '3');
  const body = await res.json();
  assert.equal(body.error.type, 'rate_limit_error');
  assert.equal(body.error.code, '429');
  // A stream request answered with an error status: the stream translation state is
  // released before the response completes (under ASan this once was a use after free).
  const s = await fetch(`${proxy.baseURL}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${MASTER}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'claude-ratelimited', stream: true, messages: [{ role: 'user', content: 'Hi' }] }),
  });
  assert.equal(s.status, 429);
  assert.equal((await s.json()).error.code, '429');
  const ok = await client.chat.completions.create({ model: 'claude-3', messages: [{ role: 'user', content: 'Hi' }] });
  assert.equal(ok.choices[0].message.content, 'Hello! This is llmux-mock.');
});

test('a request Anthropic cannot serve gets a 400 naming the problem', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'claude-3', messages: [{ role: 'user', content: 'Hi' }], n: 3 }),
    (e) => e.status === 400 && /\bn\b/.test(e.error?.message ?? ''),
  );
});
