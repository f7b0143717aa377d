// Gemini (gemini/...) and Ollama (ollama/..., ollama_chat/...) deployments
// served behind the OpenAI API, against llmux-mock speaking both wire
// formats. The OpenAI SDK must not be able to tell: content, usage, finish
// reasons, tool calls and streams are translated, the providers' errors come
// back in OpenAI's shape, and the mock's /mock/last shows what went
// upstream (path, key header, body shape).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startMock, startLlmux, mockApiBase, cleanupTempDirs, PROVIDER_KEY } from './lib/harness.mjs';

const MASTER = 'sk-providers-e2e-master';
const CONTENT = 'Hello! This is llmux-mock.';
let mock;
let proxy;
let client;

// The mock root (with its /mock/<directives> prefix): llmux appends
// /v1beta/models/... for Gemini and /api/chat for Ollama.
const mockRoot = (directives) => mockApiBase(mock, directives).replace(/\/v1$/, '');

function gemini(name, directives, params = {}) {
  return {
    model_name: name,
    litellm_params: { model: 'gemini/gemini-2.0-flash', api_base: mockRoot(directives), api_key: PROVIDER_KEY, timeout: 5, ...params },
  };
}

function ollama(name, directives, params = {}, prefix = 'ollama_chat') {
  return {
    model_name: name,
    litellm_params: { model: `${prefix}/llama3.2`, api_base: mockRoot(directives), timeout: 5, ...params },
  };
}

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', additionalProperties: false, properties: { location: { type: 'string' } }, required: ['location'] },
  },
}];

before(async () => {
  mock = await startMock();
  proxy = await startLlmux({
    model_list: [
      gemini('gemini', undefined),
      gemini('gemini-chunks', { chunks: 3, interval_ms: 10 }),
      gemini('gemini-tool', { tool: 'get_weather' }),
      gemini('gemini-ratelimited', { status: 429, error_message: 'Resource has been exhausted' }),
      gemini('gemini-badkey', { status: 400, error_message: 'API key not valid. Please pass a valid API key.' }),
      ollama('llama', undefined),
      ollama('llama-generate', undefined, {}, 'ollama'),
      ollama('llama-chunks', { chunks: 3, interval_ms: 10 }),
      ollama('llama-tool', { tool: 'get_weather' }),
      ollama('llama-missing', { status: 404, error_message: "model 'llama3.2' not found, try pulling it first" }),
      ollama('llama-malformed', { malformed: 1 }),
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

async function collect(stream) {
  let text = '';
  let finish = null;
  let usage = null;
  let role = null;
  let contentChunks = 0;
  const calls = [];
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (choice.delta?.role) role = choice.delta.role;
    if (choice.delta?.content) {
      text += choice.delta.content;
      contentChunks++;
    }
    for (const tc of choice.delta?.tool_calls ?? []) calls.push(tc);
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  return { text, finish, usage, role, contentChunks, calls };
}

// ---------------------------------------------------------------------------
// Gemini

test('Gemini: chat completion, usage, finish_reason and the request upstream', async () => {
  const r = await client.chat.completions.create({
    model: 'gemini',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hello!' },
    ],
    temperature: 0.2,
    max_tokens: 50,
    stop: ['END'],
    user: 'u-1', // OpenAI-only: must be dropped (the mock rejects unknown fields)
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, CONTENT);
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.model, 'gemini-2.0-flash');
  assert.ok(r.usage.prompt_tokens > 0);
  assert.equal(r.usage.completion_tokens, 4);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);

  const last = await mock.last();
  assert.equal(last.path, '/v1beta/models/gemini-2.0-flash:generateContent');
  assert.equal(last.headers['x-goog-api-key'], PROVIDER_KEY);
  assert.equal(last.headers.authorization, undefined);
  const sent = JSON.parse(last.body);
  assert.deepEqual(sent.contents, [{ role: 'user', parts: [{ text: 'Hello!' }] }]);
  assert.deepEqual(sent.systemInstruction, { parts: [{ text: 'You are terse.' }] });
  assert.deepEqual(sent.generationConfig, { temperature: 0.2, maxOutputTokens: 50, stopSequences: ['END'] });
  assert.equal(sent.model, undefined);
  assert.equal(sent.messages, undefined);
});

test('Gemini: stream text equals the mock content, with the usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'gemini-chunks',
    messages: [{ role: 'user', content: 'Hello!' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const s = await collect(stream);
  assert.equal(s.role, 'assistant');
  assert.equal(s.text, CONTENT);
  assert.equal(s.contentChunks, 3);
  assert.equal(s.finish, 'stop');
  assert.ok(s.usage && s.usage.prompt_tokens > 0);
  assert.equal(s.usage.completion_tokens, 4);
  const last = await mock.last();
  assert.equal(last.path, '/mock/chunks=3,interval_ms=10/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse');
  assert.equal(last.headers['x-goog-api-key'], PROVIDER_KEY);
  assert.equal(JSON.parse(last.body).stream, undefined, 'streaming is in the URL, not the body');
});

test('Gemini: tool calls (non-stream) and the tools sent upstream', async () => {
  const r = await client.chat.completions.create({
    model: 'gemini-tool',
    messages: [{ role: 'user', content: 'Weather in Paris?' }],
    tools,
    tool_choice: 'required',
  });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  const call = r.choices[0].message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_[0-9a-f]{24}$/);
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { location: 'Paris' });
  const sent = JSON.parse((await mock.last()).body);
  assert.deepEqual(sent.tools, [{
    functionDeclarations: [{
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
    }],
  }]);
  assert.deepEqual(sent.toolConfig, { functionCallingConfig: { mode: 'ANY' } });

  // The tool result goes back as a functionResponse named after the call.
  const r2 = await client.chat.completions.create({
    model: 'gemini',
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      r.choices[0].message,
      { role: 'tool', tool_call_id: call.id, content: '22C and sunny' },
    ],
    tools,
  });
  assert.equal(r2.choices[0].message.content, CONTENT);
  const sent2 = JSON.parse((await mock.last()).body);
  assert.deepEqual(sent2.contents.map((c) => c.role), ['user', 'model', 'user']);
  assert.deepEqual(sent2.contents[1].parts.at(-1), { functionCall: { name: 'get_weather', args: { location: 'Paris' } } });
  assert.deepEqual(sent2.contents[2].parts, [{ functionResponse: { name: 'get_weather', response: { content: '22C and sunny' } } }]);
});

test('Gemini: upstream errors keep their status in OpenAI shape', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'gemini-ratelimited', messages: [{ role: 'user', content: 'Hi' }] }),
    (e) => e instanceof OpenAI.RateLimitError && e.status === 429 &&
      e.error?.message === 'Resource has been exhausted' && e.error?.type === 'rate_limit_error' &&
      e.error?.code === 'RESOURCE_EXHAUSTED',
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'gemini-badkey', messages: [{ role: 'user', content: 'Hi' }] }),
    (e) => e.status === 400 && e.error?.type === 'invalid_request_error' && e.error?.code === 'INVALID_ARGUMENT',
  );
});

// ---------------------------------------------------------------------------
// Ollama

test('Ollama: chat completion, usage and the request upstream (ollama_chat/ and ollama/)', async () => {
  for (const model of ['llama', 'llama-generate']) {
    const r = await client.chat.completions.create({
      model,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: [{ type: 'text', text: 'Hello' }, { type: 'text', text: '!' }] },
      ],
      temperature: 0.3,
      max_tokens: 40,
      seed: 1,
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.content, CONTENT);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.model, 'llama3.2');
    assert.ok(r.usage.prompt_tokens > 0);
    assert.equal(r.usage.completion_tokens, 4);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 4);

    const last = await mock.last();
    assert.equal(last.path, '/api/chat');
    assert.equal(last.headers.authorization, undefined, 'no key configured, none sent');
    const sent = JSON.parse(last.body);
    assert.equal(sent.model, 'llama3.2');
    assert.equal(sent.stream, false, 'stream is always explicit (Ollama defaults to true)');
    assert.deepEqual(sent.messages, [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hello!' },
    ]);
    assert.deepEqual(sent.options, { temperature: 0.3, seed: 1, num_predict: 40 });
  }
});

test('Ollama: NDJSON stream text equals the mock content, with the usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'llama-chunks',
    messages: [{ role: 'user', content: 'Hello!' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const s = await collect(stream);
  assert.equal(s.role, 'assistant');
  assert.equal(s.text, CONTENT);
  assert.equal(s.contentChunks, 3);
  assert.equal(s.finish, 'stop');
  assert.ok(s.usage && s.usage.prompt_tokens > 0);
  assert.equal(s.usage.completion_tokens, 4);
  const sent = JSON.parse((await mock.last()).body);
  assert.equal(sent.stream, true);
  assert.equal(sent.stream_options, undefined);

  // Without include_usage there is no usage chunk.
  const s2 = await collect(await client.chat.completions.create({
    model: 'llama', messages: [{ role: 'user', content: 'Hello!' }], stream: true,
  }));
  assert.equal(s2.text, CONTENT);
  assert.equal(s2.usage, null);
});

test('Ollama: tool calls (non-stream) and the tools sent upstream', async () => {
  const r = await client.chat.completions.create({
    model: 'llama-tool',
    messages: [{ role: 'user', content: 'Weather in Paris?' }],
    tools,
  });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  const call = r.choices[0].message.tool_calls[0];
  assert.match(call.id, /^call_[0-9a-f]{24}$/);
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { location: 'Paris' });
  const sent = JSON.parse((await mock.last()).body);
  assert.deepEqual(sent.tools, tools, 'OpenAI function tools pass as they are');

  await client.chat.completions.create({
    model: 'llama',
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      r.choices[0].message,
      { role: 'tool', tool_call_id: call.id, content: '22C' },
    ],
  });
  const sent2 = JSON.parse((await mock.last()).body);
  assert.deepEqual(sent2.messages[1].tool_calls, [{ function: { name: 'get_weather', arguments: { location: 'Paris' } } }]);
  assert.deepEqual(sent2.messages[2], { role: 'tool', content: '22C', tool_name: 'get_weather' });

  // Tool calls in a stream arrive as complete deltas.
  const s = await collect(await client.chat.completions.create({
    model: 'llama-tool', messages: [{ role: 'user', content: 'Weather?' }], tools, stream: true,
  }));
  assert.equal(s.finish, 'tool_calls');
  assert.equal(s.calls.length, 1);
  assert.equal(s.calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(s.calls[0].function.arguments), { location: 'Paris' });
});

test('Ollama: upstream errors keep their status; a broken stream line ends the stream with an error', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'llama-missing', messages: [{ role: 'user', content: 'Hi' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 &&
      e.error?.message === "model 'llama3.2' not found, try pulling it first" && e.error?.code === '404',
  );
  await assert.rejects(
    (async () => {
      const stream = await client.chat.completions.create({
        model: 'llama-malformed', messages: [{ role: 'user', content: 'Hi' }], stream: true,
      });
      for await (const chunk of stream) void chunk;
    })(),
    (e) => e instanceof OpenAI.APIError,
  );
});
