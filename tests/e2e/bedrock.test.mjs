// AWS Bedrock behind the OpenAI API: llmux signs Converse / ConverseStream
// requests with SigV4 and translates answers, binary event streams and errors
// so that the OpenAI SDK cannot tell. The mock checks every signature with the
// deployment's secret (MOCK_AWS_SECRET), so a signing bug is a 403 here.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startMock, startLlmux, cleanupTempDirs, collectStream } from './lib/harness.mjs';

const MASTER = 'sk-bedrock-e2e-master';
const MODEL_ID = 'anthropic.claude-3-sonnet-20240229-v1:0';
const AK = 'AKIDEXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const REGION = 'eu-west-3';

let mock;
let proxy;
let client;

// The mock serves /model/{id}/converse at its root; directives go in a /mock/<k=v>/ prefix.
function bedrockBase(directives = {}) {
  const parts = Object.entries(directives).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`);
  return parts.length ? `${mock.url}/mock/${parts.join(',')}` : mock.url;
}

function bedrock(name, directives, params = {}) {
  return {
    model_name: name,
    litellm_params: {
      model: `bedrock/${MODEL_ID}`,
      api_base: bedrockBase(directives),
      aws_access_key_id: AK,
      aws_secret_access_key: SECRET,
      aws_region_name: REGION,
      timeout: 5,
      stream_timeout: 3,
      ...params,
    },
  };
}

before(async () => {
  // Both processes inherit the environment: the mock verifies signatures with this secret, and
  // llmux must not pick up credentials from the machine for the deployment that has none.
  process.env.MOCK_AWS_SECRET = SECRET;
  for (const v of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) delete process.env[v];
  mock = await startMock();
  proxy = await startLlmux({
    model_list: [
      bedrock('bedrock-claude', undefined),
      bedrock('bedrock-chunks', { chunks: 4, interval_ms: 20 }),
      bedrock('bedrock-tool', { tool: 'get_weather' }),
      bedrock('bedrock-throttled', { status: 429, error_message: 'Too many requests, please wait before trying again.' }),
      bedrock('bedrock-invalid', { status: 400, error_message: 'The provided model identifier is invalid.' }),
      bedrock('bedrock-down', { status: 503 }),
      bedrock('bedrock-stream-error', { stream_error: 1, error_message: 'model stream broke' }),
      bedrock('bedrock-malformed', { malformed: 1 }),
      // Spaced events: a reset discards unread bytes, so the first delta must be read before it.
      bedrock('bedrock-reset', { reset_after: 2, chunks: 4, interval_ms: 30 }),
      bedrock('bedrock-wrong-secret', undefined, { aws_secret_access_key: 'not-the-secret' }),
      bedrock('bedrock-token', undefined, { aws_session_token: 'FQoGZXIvYXdzEXAMPLE' }),
      bedrock('bedrock-nocreds', undefined, { aws_access_key_id: null, aws_secret_access_key: null }),
    ],
    general_settings: { master_key: MASTER },
  });
  client = new OpenAI({ apiKey: MASTER, baseURL: proxy.baseURL, maxRetries: 0 });
});

after(async () => {
  await proxy?.stop();
  await mock?.stop();
  delete process.env.MOCK_AWS_SECRET;
  await cleanupTempDirs();
});

test('chat completion through Bedrock Converse: content, usage, and the signed request', async () => {
  const r = await client.chat.completions.create({
    model: 'bedrock-claude',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hello!' },
    ],
    temperature: 0.2,
    max_tokens: 50,
    frequency_penalty: 0.5, // OpenAI-only: must be dropped (the mock rejects unknown keys)
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, MODEL_ID);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, 'Hello! This is llmux-mock.');
  assert.equal(r.choices[0].finish_reason, 'stop');
  // "Hello!" (6 bytes) + "You are terse." (14) = 20 bytes -> 5 tokens; 4 words out.
  assert.equal(r.usage.prompt_tokens, 5);
  assert.equal(r.usage.completion_tokens, 4);
  assert.equal(r.usage.total_tokens, 9);

  const last = await mock.last();
  assert.equal(last.method, 'POST');
  assert.equal(last.path, '/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse');
  const auth = last.headers.authorization;
  assert.match(auth, new RegExp(`^AWS4-HMAC-SHA256 Credential=${AK}/\\d{8}/${REGION}/bedrock/aws4_request, `));
  assert.match(auth, /SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$/);
  assert.match(last.headers['x-amz-date'], /^\d{8}T\d{6}Z$/);
  assert.equal(auth.split('/')[1], last.headers['x-amz-date'].slice(0, 8));
  assert.equal(last.headers['x-amz-security-token'], undefined);
  assert.ok(!JSON.stringify(last).includes(SECRET), 'the secret never travels');
  const sent = JSON.parse(last.body);
  assert.deepEqual(sent.system, [{ text: 'You are terse.' }]);
  assert.deepEqual(sent.messages, [{ role: 'user', content: [{ text: 'Hello!' }] }]);
  assert.deepEqual(sent.inferenceConfig, { maxTokens: 50, temperature: 0.2 });
  assert.equal(sent.frequency_penalty, undefined);
  assert.equal(sent.model, undefined);
});

test('stream through ConverseStream: deltas, finish_reason, usage chunk, [DONE]', async () => {
  const stream = await client.chat.completions.create({
    model: 'bedrock-chunks',
    messages: [{ role: 'user', content: 'Hello!' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let contentChunks = 0;
  let role = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.equal(chunk.model, MODEL_ID);
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta?.role) role = choice.delta.role;
    if (choice.delta?.content) {
      text += choice.delta.content;
      contentChunks++;
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  assert.equal(role, 'assistant');
  assert.equal(text, 'Hello! This is llmux-mock.');
  assert.equal(contentChunks, 4);
  assert.equal(finish, 'stop');
  assert.deepEqual([usage.prompt_tokens, usage.completion_tokens, usage.total_tokens], [2, 4, 6]);

  const last = await mock.last();
  assert.equal(last.path, '/mock/chunks=4,interval_ms=20/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse-stream');
  assert.equal(last.headers.accept, 'application/vnd.amazon.eventstream');

  // Raw SSE framing: no usage chunk unless asked for, and [DONE] last.
  const raw = await collectStream(proxy.baseURL, '/v1/chat/completions', {
    model: 'bedrock-claude', messages: [{ role: 'user', content: 'Hi' }], stream: true,
  }, { key: MASTER });
  assert.equal(raw.status, 200);
  assert.equal(raw.done, true);
  assert.equal(raw.events.at(-1), '[DONE]');
  assert.equal(raw.text, 'Hello! This is llmux-mock.');
  assert.ok(raw.chunks.every((c) => c && !c.usage));
});

test('tool calls through Bedrock, non-stream and stream, and tool results sent back', async () => {
  const tools = [{
    type: 'function',
    function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { location: { type: 'string' } } } },
  }];
  const r = await client.chat.completions.create({
    model: 'bedrock-tool',
    messages: [{ role: 'user', content: 'Weather in Paris?' }],
    tools,
    tool_choice: 'required',
  });
  const msg = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(msg.tool_calls.length, 1);
  assert.equal(msg.tool_calls[0].type, 'function');
  assert.equal(msg.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), { location: 'Paris' });
  assert.match(msg.tool_calls[0].id, /^tooluse_/);
  let sent = JSON.parse((await mock.last()).body);
  assert.deepEqual(sent.toolConfig.toolChoice, { any: {} });
  assert.deepEqual(sent.toolConfig.tools[0].toolSpec.inputSchema.json, tools[0].function.parameters);

  // Stream: a tool_call start chunk (id, name) then argument pieces.
  const stream = await client.chat.completions.create({
    model: 'bedrock-tool',
    messages: [{ role: 'user', content: 'Weather in Paris?' }],
    tools,
    stream: true,
  });
  let args = '';
  let id = null;
  let name = null;
  let finish = null;
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    for (const tc of choice.delta?.tool_calls ?? []) {
      assert.equal(tc.index, 0);
      if (tc.id) id = tc.id;
      if (tc.function?.name) name = tc.function.name;
      args += tc.function?.arguments ?? '';
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  assert.match(id, /^tooluse_/);
  assert.equal(name, 'get_weather');
  assert.deepEqual(JSON.parse(args), { location: 'Paris' });
  assert.equal(finish, 'tool_calls');

  // The conversation continues with the tool's result: a user turn of toolResult blocks.
  const r2 = await client.chat.completions.create({
    model: 'bedrock-claude',
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'tooluse_1', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'tooluse_1', content: '18C and sunny' },
    ],
    tools,
  });
  assert.equal(r2.choices[0].finish_reason, 'stop');
  sent = JSON.parse((await mock.last()).body);
  assert.deepEqual(sent.messages[1], { role: 'assistant', content: [{ toolUse: { toolUseId: 'tooluse_1', name: 'get_weather', input: { location: 'Paris' } } }] });
  assert.deepEqual(sent.messages[2], { role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_1', content: [{ text: '18C and sunny' }] } }] });
});

test('Bedrock errors come back in OpenAI shape with the status kept', async () => {
  const cases = [
    ['bedrock-throttled', 429, 'rate_limit_error', 'Too many requests, please wait before trying again.', OpenAI.RateLimitError],
    ['bedrock-invalid', 400, 'invalid_request_error', 'The provided model identifier is invalid.', OpenAI.BadRequestError],
    ['bedrock-down', 503, 'server_error', 'mock error 503', OpenAI.InternalServerError],
  ];
  for (const [model, status, type, message, cls] of cases) {
    await assert.rejects(
      client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] }),
      (e) => {
        assert.ok(e instanceof cls, `${model}: ${e.constructor.name}`);
        assert.equal(e.status, status);
        assert.equal(e.error?.type, type);
        assert.equal(e.error?.code, String(status));
        assert.equal(e.error?.message, message);
        return true;
      },
    );
  }
  // A stream request that fails upfront is a plain JSON error too.
  await assert.rejects(
    client.chat.completions.create({ model: 'bedrock-throttled', messages: [{ role: 'user', content: 'x' }], stream: true }),
    (e) => e.status === 429,
  );
});

test('a wrong secret is refused by the signature check (403), a session token is signed', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'bedrock-wrong-secret', messages: [{ role: 'user', content: 'x' }] }),
    (e) => {
      assert.equal(e.status, 403);
      assert.equal(e.error?.type, 'permission_error');
      assert.match(e.error?.message, /signature we calculated does not match/);
      return true;
    },
  );
  const r = await client.chat.completions.create({ model: 'bedrock-token', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(r.choices[0].message.content, 'Hello! This is llmux-mock.');
  const last = await mock.last();
  assert.equal(last.headers['x-amz-security-token'], 'FQoGZXIvYXdzEXAMPLE');
  assert.match(last.headers.authorization, /SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token,/);
});

test('missing AWS credentials: a configuration error naming what is missing', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'bedrock-nocreds', messages: [{ role: 'user', content: 'x' }] }),
    (e) => {
      assert.equal(e.status, 500);
      assert.match(e.error?.message, /no AWS credentials: an access key id and a secret access key missing/);
      assert.ok(!e.error.message.includes(SECRET));
      return true;
    },
  );
});

test('stream faults: exception mid-stream, bad CRC, connection reset', async () => {
  // An exception frame becomes an OpenAI error event after the first delta.
  const err = await collectStream(proxy.baseURL, '/v1/chat/completions', {
    model: 'bedrock-stream-error', messages: [{ role: 'user', content: 'x' }], stream: true,
  }, { key: MASTER });
  assert.equal(err.status, 200);
  assert.equal(err.text, 'Hello!');
  const last = err.chunks.at(-1);
  assert.equal(last.error.code, '424');
  assert.match(last.error.message, /modelStreamErrorException: model stream broke/);
  assert.equal(err.done, false);

  // The SDK raises on it.
  await assert.rejects(async () => {
    const s = await client.chat.completions.create({ model: 'bedrock-stream-error', messages: [{ role: 'user', content: 'x' }], stream: true });
    for await (const _ of s) { /* drain */ }
  }, /model stream broke/);

  // A frame with a bad CRC: the stream ends with an error event naming it.
  const bad = await collectStream(proxy.baseURL, '/v1/chat/completions', {
    model: 'bedrock-malformed', messages: [{ role: 'user', content: 'x' }], stream: true,
  }, { key: MASTER });
  const tail = bad.status === 200 ? bad.chunks.at(-1)?.error : bad.json?.error;
  assert.ok(tail, `an error: ${JSON.stringify(bad)}`);
  assert.match(tail.message, /event stream CRC mismatch/);
  assert.equal(bad.done, false);

  // Reset after two deltas: the client sees the text so far, then an error, no [DONE].
  const reset = await collectStream(proxy.baseURL, '/v1/chat/completions', {
    model: 'bedrock-reset', messages: [{ role: 'user', content: 'x' }], stream: true,
  }, { key: MASTER });
  assert.equal(reset.done, false);
  assert.ok(reset.chunks.at(-1)?.error, `an error event ends the stream: ${JSON.stringify({ status: reset.status, events: reset.events, error: String(reset.error), incomplete: reset.incomplete })}`);
});
