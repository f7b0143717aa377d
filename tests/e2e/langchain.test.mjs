// LangChain's ChatOpenAI / OpenAIEmbeddings pointed at llmux, as in the tutorial.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import { HumanMessage, SystemMessage } from '@langchain/core/messages';

import { startMock, startLlmux, mockDeployment, cleanupTempDirs, MASTER_KEY } from './lib/harness.mjs';

const MOCK_CONTENT = 'Hello! This is llmux-mock.';
let mock;
let proxy;
let llm;

before(async () => {
  mock = await startMock();
  proxy = await startLlmux({
    model_list: [
      mockDeployment(mock, { name: 'gpt-4o', upstream: 'gpt-4o-mini' }),
      mockDeployment(mock, { name: 'text-embedding-3-small', upstream: 'text-embedding-3-small' }),
      { model_name: 'local', litellm_params: { model: 'openai/local', mock_response: 'Hello from llmux' } },
    ],
    general_settings: { master_key: MASTER_KEY },
  });
  llm = new ChatOpenAI({ model: 'gpt-4o', apiKey: MASTER_KEY, configuration: { baseURL: proxy.baseURL }, maxRetries: 0 });
});

after(async () => {
  await proxy?.stop();
  await mock?.stop();
  await cleanupTempDirs();
});

test('ChatOpenAI.invoke', async () => {
  const msg = await llm.invoke([new SystemMessage('You are terse.'), new HumanMessage('Say hello')]);
  assert.equal(msg.content, MOCK_CONTENT);
  assert.equal(msg.response_metadata.model_name, 'gpt-4o-mini');
  assert.ok(msg.usage_metadata.input_tokens > 0);
  assert.equal(msg.usage_metadata.output_tokens, MOCK_CONTENT.split(/\s+/).length);
  const sent = JSON.parse((await mock.last()).body);
  assert.equal(sent.model, 'gpt-4o-mini');
  assert.deepEqual(sent.messages.map((m) => m.role), ['system', 'user']);
  assert.equal(sent.messages[1].content, 'Say hello');
});

test('ChatOpenAI.stream', async () => {
  let text = '';
  let pieces = 0;
  let usage = null;
  for await (const chunk of await llm.stream('Say hello')) {
    if (chunk.content) { text += chunk.content; pieces++; }
    if (chunk.usage_metadata) usage = chunk.usage_metadata;
  }
  assert.equal(text, MOCK_CONTENT);
  assert.ok(pieces >= 2, `streamed in pieces (${pieces})`);
  assert.ok(usage && usage.output_tokens === MOCK_CONTENT.split(/\s+/).length, `usage from the stream: ${JSON.stringify(usage)}`);
  const sent = JSON.parse((await mock.last()).body);
  assert.equal(sent.stream, true);
});

test('ChatOpenAI against a mock_response model, and batch', async () => {
  const local = new ChatOpenAI({ model: 'local', apiKey: MASTER_KEY, configuration: { baseURL: proxy.baseURL }, maxRetries: 0 });
  const out = await local.batch(['a', 'b', 'c']);
  assert.deepEqual(out.map((m) => m.content), ['Hello from llmux', 'Hello from llmux', 'Hello from llmux']);
});

test('a wrong key surfaces as an error from ChatOpenAI', async () => {
  const bad = new ChatOpenAI({ model: 'gpt-4o', apiKey: 'sk-wrong', configuration: { baseURL: proxy.baseURL }, maxRetries: 0 });
  await assert.rejects(bad.invoke('hi'), (e) => {
    assert.ok(e.status === 401 || /401/.test(String(e.message)), `401 expected: ${e}`);
    return true;
  });
});

test('OpenAIEmbeddings.embedQuery / embedDocuments', async () => {
  const emb = new OpenAIEmbeddings({ model: 'text-embedding-3-small', apiKey: MASTER_KEY, configuration: { baseURL: proxy.baseURL }, maxRetries: 0 });
  const v = await emb.embedQuery('hello');
  assert.ok(Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isFinite(x)));
  const docs = await emb.embedDocuments(['one', 'two', 'three']);
  assert.equal(docs.length, 3);
  assert.equal(docs[0].length, v.length);
  const sent = JSON.parse((await mock.last()).body);
  assert.equal(sent.model, 'text-embedding-3-small');
  assert.deepEqual(sent.input, ['one', 'two', 'three']);
});
