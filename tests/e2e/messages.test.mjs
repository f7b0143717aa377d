// Anthropic's Messages API in front of every model: the official
// @anthropic-ai/sdk calls POST /v1/messages on llmux, which serves it from
// (a) an OpenAI-format upstream (llmux-mock's /v1/chat/completions), (b) an
// Anthropic-format upstream (llmux-mock's /v1/messages behind a claude-*
// deployment) and (c) a mock_response model. Responses, streams (text and
// tool use), usage, errors and count_tokens must look like Anthropic's to the
// SDK, and the OpenAI upstream must receive a faithful OpenAI request.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';

import { startMock, startLlmux, mockApiBase, cleanupTempDirs, PROVIDER_KEY } from './lib/harness.mjs';

const MASTER = 'sk-messages-e2e-master';
const MOCK_TEXT = 'Hello! This is llmux-mock.';
let mock;
let proxy;
let client;

function openai(name, directives) {
  return {
    model_name: name,
    litellm_params: { model: 'openai/gpt-4o-mini', api_base: mockApiBase(mock, directives), api_key: PROVIDER_KEY, timeout: 5, stream_timeout: 5 },
  };
}

function claude(name, directives) {
  // llmux appends /v1/messages to the api_base, like api.anthropic.com.
  const base = mockApiBase(mock, directives).replace(/\/v1$/, '');
  return {
    model_name: name,
    litellm_params: { model: 'claude-3-opus-20240229', api_base: base, api_key: PROVIDER_KEY, timeout: 5 },
  };
}

const weatherTool = {
  name: 'get_weather',
  description: 'Get the current weather in a given location',
  input_schema: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
};

// ceil(bytes / 4), at least 1: the mock's and llmux's token estimate.
const estimate = (...texts) => Math.max(1, Math.ceil(texts.reduce((n, t) => n + Buffer.byteLength(t), 0) / 4));

before(async () => {
  mock = await startMock();
  proxy = await startLlmux({
    model_list: [
      openai('gpt-oai'),
      openai('gpt-chunks', { chunks: 3, interval_ms: 10 }),
      openai('gpt-ratelimited', { status: 429, retry_after: 2 }),
      openai('gpt-stream-error', { stream_error: 1 }),
      claude('claude-3'),
      claude('claude-chunks', { chunks: 4, interval_ms: 10 }),
      claude('claude-tool', { tool: 'get_weather' }),
      claude('claude-cached', { cache_read: 5, cache_creation: 2 }),
      claude('claude-ratelimited', { status: 429 }),
      { model_name: 'local', litellm_params: { model: 'openai/local', mock_response: 'Hello from llmux' } },
    ],
    general_settings: { master_key: MASTER },
  });
  client = new Anthropic({ apiKey: MASTER, baseURL: proxy.baseURL, maxRetries: 0 });
});

after(async () => {
  await proxy?.stop();
  await mock?.stop();
  await cleanupTempDirs();
});

// Collect a raw event stream: types in order, text, and the closing delta.
async function rawStream(params) {
  const stream = await client.messages.create({ ...params, stream: true });
  const types = [];
  let text = '';
  let delta = null;
  let start = null;
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === 'message_start') start = ev.message;
    if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    if (ev.type === 'message_delta') delta = ev;
  }
  return { types, text, delta, start };
}

// ---- (a) OpenAI-format upstream ----

test('OpenAI upstream: messages.create gives an Anthropic message, and the upstream got an OpenAI request', async () => {
  const r = await client.messages.create({
    model: 'gpt-oai',
    max_tokens: 100,
    system: 'Be terse.',
    messages: [{ role: 'user', content: 'Hello!' }],
    temperature: 0.3,
    stop_sequences: ['END'],
    metadata: { user_id: 'user-42' },
  });
  assert.equal(r.type, 'message');
  assert.equal(r.role, 'assistant');
  assert.match(r.id, /^msg_/);
  assert.equal(r.model, 'gpt-4o-mini');
  assert.deepEqual(r.content, [{ type: 'text', text: MOCK_TEXT }]);
  assert.equal(r.stop_reason, 'end_turn');
  assert.equal(r.stop_sequence, null);
  assert.equal(r.usage.input_tokens, estimate('Be terse.', 'Hello!'));
  assert.equal(r.usage.output_tokens, 4);

  const last = await mock.last();
  assert.ok(last.path.endsWith('/v1/chat/completions'), last.path);
  assert.equal(last.headers.authorization, `Bearer ${PROVIDER_KEY}`);
  const sent = JSON.parse(last.body);
  assert.equal(sent.model, 'gpt-4o-mini');
  assert.deepEqual(sent.messages, [
    { role: 'system', content: 'Be terse.' },
    { role: 'user', content: 'Hello!' },
  ]);
  assert.equal(sent.max_tokens, 100);
  assert.equal(sent.temperature, 0.3);
  assert.deepEqual(sent.stop, ['END']);
  assert.equal(sent.user, 'user-42');
  assert.equal(sent.stop_sequences, undefined);
  assert.equal(sent.system, undefined);
});

test('OpenAI upstream: streams through messages.stream and create({stream: true})', async () => {
  const params = { model: 'gpt-chunks', max_tokens: 50, messages: [{ role: 'user', content: 'Hi there' }] };
  const stream = client.messages.stream(params);
  let streamed = '';
  stream.on('text', (t) => { streamed += t; });
  const final = await stream.finalMessage();
  assert.equal(streamed, MOCK_TEXT);
  assert.deepEqual(final.content, [{ type: 'text', text: MOCK_TEXT }]);
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(final.usage.output_tokens, 4);
  assert.equal(final.usage.input_tokens, estimate('Hi there'));
  const sent = JSON.parse((await mock.last()).body);
  assert.equal(sent.stream, true);
  assert.deepEqual(sent.stream_options, { include_usage: true });

  const raw = await rawStream(params);
  assert.deepEqual(raw.types, [
    'message_start', 'content_block_start',
    'content_block_delta', 'content_block_delta', 'content_block_delta',
    'content_block_stop', 'message_delta', 'message_stop',
  ]);
  assert.equal(raw.text, MOCK_TEXT);
  assert.equal(raw.start.role, 'assistant');
  assert.deepEqual(raw.start.content, []);
  assert.equal(raw.delta.delta.stop_reason, 'end_turn');
  assert.equal(raw.delta.usage.output_tokens, 4);
});

test('OpenAI upstream: tools, tool_choice and a tool_use/tool_result history are translated', async () => {
  const r = await client.messages.create({
    model: 'gpt-oai',
    max_tokens: 100,
    tools: [weatherTool],
    tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true },
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { location: 'Paris' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_01', content: '15 degrees' },
          { type: 'text', text: 'And tomorrow?' },
        ],
      },
    ],
  });
  assert.equal(r.content[0].text, MOCK_TEXT);
  const sent = JSON.parse((await mock.last()).body);
  assert.deepEqual(sent.tools, [{
    type: 'function',
    function: { name: 'get_weather', description: weatherTool.description, parameters: weatherTool.input_schema },
  }]);
  assert.deepEqual(sent.tool_choice, { type: 'function', function: { name: 'get_weather' } });
  assert.equal(sent.parallel_tool_calls, false);
  assert.equal(sent.messages.length, 4);
  assert.deepEqual(sent.messages[1].tool_calls, [{
    id: 'toolu_01', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' },
  }]);
  assert.equal(sent.messages[1].content, 'Let me check.');
  assert.deepEqual(sent.messages[2], { role: 'tool', tool_call_id: 'toolu_01', content: '15 degrees' });
  assert.deepEqual(sent.messages[3], { role: 'user', content: 'And tomorrow?' });

  // tool_choice any -> required; an image block -> image_url with a data URL.
  await client.messages.create({
    model: 'gpt-oai',
    max_tokens: 10,
    tools: [weatherTool],
    tool_choice: { type: 'any' },
    messages: [{
      role: 'user',
      content: [
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
        { type: 'text', text: 'What is this?' },
      ],
    }],
  });
  const sent2 = JSON.parse((await mock.last()).body);
  assert.equal(sent2.tool_choice, 'required');
  assert.deepEqual(sent2.messages[0].content, [
    { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
    { type: 'text', text: 'What is this?' },
  ]);
});

test('OpenAI upstream: a 429 is a RateLimitError, a stream error an APIError', async () => {
  await assert.rejects(
    client.messages.create({ model: 'gpt-ratelimited', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] }),
    (e) => e instanceof Anthropic.RateLimitError && e.status === 429 && e.error?.type === 'error' &&
      e.error?.error?.type === 'rate_limit_error' && e.headers?.get('retry-after') === '2',
  );
  await assert.rejects(
    (async () => {
      const s = await client.messages.create({ model: 'gpt-stream-error', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'Hi' }] });
      for await (const ev of s) void ev;
    })(),
    (e) => e instanceof Anthropic.APIError && /mock stream error/.test(e.message),
  );
});

// ---- (b) Anthropic-format upstream ----

test('Anthropic upstream: messages.create round-trips content, usage and the request', async () => {
  const r = await client.messages.create({
    model: 'claude-3',
    max_tokens: 200,
    system: 'You are terse.',
    messages: [{ role: 'user', content: 'Hello!' }],
  });
  assert.deepEqual(r.content, [{ type: 'text', text: MOCK_TEXT }]);
  assert.equal(r.stop_reason, 'end_turn');
  assert.equal(r.model, 'claude-3-opus-20240229');
  assert.equal(r.usage.input_tokens, estimate('You are terse.', 'Hello!'));
  assert.equal(r.usage.output_tokens, 4);
  const last = await mock.last();
  assert.ok(last.path.endsWith('/v1/messages'), last.path);
  assert.equal(last.headers['x-api-key'], PROVIDER_KEY);
  const sent = JSON.parse(last.body);
  assert.equal(sent.max_tokens, 200);
  assert.equal(sent.messages.length, 1);
  const system = typeof sent.system === 'string' ? sent.system : sent.system.map((b) => b.text).join('\n');
  assert.equal(system, 'You are terse.');

  // Cache tokens keep Anthropic's meaning through the OpenAI pipeline.
  const c = await client.messages.create({ model: 'claude-cached', max_tokens: 10, system: 'You are terse.', messages: [{ role: 'user', content: 'Hello!' }] });
  assert.equal(c.usage.cache_read_input_tokens, 5);
  assert.equal(c.usage.cache_creation_input_tokens, 2);
  assert.equal(c.usage.input_tokens, r.usage.input_tokens);
});

test('Anthropic upstream: messages.stream text, final message and usage', async () => {
  const stream = client.messages.stream({ model: 'claude-chunks', max_tokens: 50, messages: [{ role: 'user', content: 'Hello!' }] });
  const pieces = [];
  stream.on('text', (t) => pieces.push(t));
  const final = await stream.finalMessage();
  assert.equal(pieces.join(''), MOCK_TEXT);
  assert.equal(pieces.length, 4);
  assert.equal(final.content[0].text, MOCK_TEXT);
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(final.usage.output_tokens, 4);
  assert.equal(final.usage.input_tokens, estimate('Hello!'));
});

test('Anthropic upstream: tool use, non-stream and stream, then the tool_result goes back', async () => {
  const params = { model: 'claude-tool', max_tokens: 100, tools: [weatherTool], messages: [{ role: 'user', content: 'Weather in Paris?' }] };
  const r = await client.messages.create(params);
  assert.equal(r.stop_reason, 'tool_use');
  const use = r.content.find((b) => b.type === 'tool_use');
  assert.ok(use, JSON.stringify(r.content));
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { location: 'Paris' });
  assert.match(use.id, /^toolu_/);
  const sent = JSON.parse((await mock.last()).body);
  assert.equal(sent.tools[0].name, 'get_weather');
  assert.deepEqual(sent.tools[0].input_schema, weatherTool.input_schema);

  const final = await client.messages.stream(params).finalMessage();
  assert.equal(final.stop_reason, 'tool_use');
  const suse = final.content.find((b) => b.type === 'tool_use');
  assert.ok(suse, JSON.stringify(final.content));
  assert.equal(suse.name, 'get_weather');
  assert.deepEqual(suse.input, { location: 'Paris' });
  assert.equal(final.content[0].type, 'text');
  assert.equal(final.content[0].text, MOCK_TEXT);

  const answer = await client.messages.create({
    model: 'claude-3',
    max_tokens: 100,
    tools: [weatherTool],
    messages: [
      ...params.messages,
      { role: 'assistant', content: r.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '15 degrees' }] },
    ],
  });
  assert.equal(answer.content[0].text, MOCK_TEXT);
  const back = JSON.parse((await mock.last()).body);
  const lastTurn = back.messages[back.messages.length - 1];
  assert.equal(lastTurn.role, 'user');
  const result = lastTurn.content.find((b) => b.type === 'tool_result');
  assert.equal(result.tool_use_id, use.id);
  const resultText = typeof result.content === 'string' ? result.content : result.content.map((b) => b.text).join('');
  assert.equal(resultText, '15 degrees');
  const prev = back.messages[back.messages.length - 2];
  assert.ok(prev.content.some((b) => b.type === 'tool_use' && b.id === use.id && b.input.location === 'Paris'));
});

test('Anthropic upstream: a 429 is a RateLimitError with Anthropic\'s error shape', async () => {
  await assert.rejects(
    client.messages.create({ model: 'claude-ratelimited', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] }),
    (e) => e instanceof Anthropic.RateLimitError && e.error?.error?.type === 'rate_limit_error',
  );
});

// ---- (c) mock_response ----

test('mock_response model: create and stream', async () => {
  const r = await client.messages.create({ model: 'local', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] });
  assert.deepEqual(r.content, [{ type: 'text', text: 'Hello from llmux' }]);
  assert.equal(r.stop_reason, 'end_turn');
  assert.equal(r.usage.output_tokens, 3);
  assert.ok(r.usage.input_tokens >= 1);

  const raw = await rawStream({ model: 'local', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] });
  assert.equal(raw.text, 'Hello from llmux');
  assert.equal(raw.types[0], 'message_start');
  assert.equal(raw.types.at(-1), 'message_stop');
  assert.equal(raw.delta.delta.stop_reason, 'end_turn');
  assert.equal(raw.delta.usage.output_tokens, 3);
});

// ---- errors and count_tokens ----

test('client errors: bad key, missing max_tokens, unknown model, bad content', async () => {
  const bad = new Anthropic({ apiKey: 'sk-wrong', baseURL: proxy.baseURL, maxRetries: 0 });
  await assert.rejects(
    bad.messages.create({ model: 'gpt-oai', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] }),
    (e) => e instanceof Anthropic.AuthenticationError && e.status === 401 &&
      e.error?.type === 'error' && e.error?.error?.type === 'authentication_error',
  );
  await assert.rejects(
    client.messages.create({ model: 'gpt-oai', messages: [{ role: 'user', content: 'Hi' }] }),
    (e) => e instanceof Anthropic.BadRequestError && e.error?.type === 'error' &&
      e.error?.error?.type === 'invalid_request_error' && e.error?.error?.message === 'max_tokens: Field required',
  );
  await assert.rejects(
    client.messages.create({ model: 'no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'Hi' }] }),
    (e) => e instanceof Anthropic.BadRequestError && /no-such-model/.test(e.error?.error?.message ?? ''),
  );
  await assert.rejects(
    client.messages.create({ model: 'gpt-oai', max_tokens: 10, messages: [{ role: 'system', content: 'Hi' }] }),
    (e) => e instanceof Anthropic.BadRequestError && /Unexpected role "system"/.test(e.error?.error?.message ?? ''),
  );
});

test('count_tokens estimates system and message text', async () => {
  const r = await client.messages.countTokens({
    model: 'gpt-oai',
    system: 'hello world!',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'abcd' }] }],
  });
  assert.equal(r.input_tokens, estimate('hello world!', 'abcd'));
  await assert.rejects(
    client.messages.countTokens({ model: 'gpt-oai' }),
    (e) => e instanceof Anthropic.BadRequestError,
  );
});
