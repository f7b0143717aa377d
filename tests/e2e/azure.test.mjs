// Azure OpenAI deployments (azure/<deployment>): the deployment goes in the
// path, api_version in ?api-version=, the key in an api-key header. Clients
// use the plain OpenAI SDK against llmux and cannot tell.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { startMock, startLlmux, cleanupTempDirs, PROVIDER_KEY } from './lib/harness.mjs';

const MASTER = 'sk-azure-e2e-master';
let mock;
let proxy;
let client;

function azure(name, deployment, extra = {}) {
  return {
    model_name: name,
    litellm_params: {
      model: `azure/${deployment}`,
      api_base: mock.url, // as Azure's https://<resource>.openai.azure.com
      api_key: PROVIDER_KEY,
      api_version: '2024-10-21',
      timeout: 5,
      stream_timeout: 2,
      ...extra,
    },
  };
}

before(async () => {
  mock = await startMock();
  proxy = await startLlmux({
    model_list: [
      azure('gpt-4o-azure', 'prod-gpt4o'),
      azure('embed-azure', 'prod-embed'),
      azure('azure-nokey', 'prod-gpt4o', { api_key: undefined }),
    ],
    general_settings: { master_key: MASTER },
  }, { env: { AZURE_API_KEY: '' } });
  client = new OpenAI({ apiKey: MASTER, baseURL: proxy.baseURL, maxRetries: 0 });
});

after(async () => {
  await proxy?.stop();
  await mock?.stop();
  await cleanupTempDirs();
});

test('chat through an azure/ deployment: path, api-version, api-key, model', async () => {
  const r = await client.chat.completions.create({ model: 'gpt-4o-azure', messages: [{ role: 'user', content: 'Hi' }] });
  assert.equal(r.choices[0].message.content, 'Hello! This is llmux-mock.');
  assert.equal(r.model, 'prod-gpt4o');
  const last = await mock.last();
  assert.equal(last.path, '/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21');
  assert.equal(last.headers['api-key'], PROVIDER_KEY);
  assert.equal(last.headers.authorization, undefined);
  assert.equal(JSON.parse(last.body).model, 'prod-gpt4o');
});

test('stream and embeddings through azure/ deployments', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-azure', messages: [{ role: 'user', content: 'Hi' }], stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, 'Hello! This is llmux-mock.');
  assert.ok(usage?.completion_tokens > 0);
  const e = await client.embeddings.create({ model: 'embed-azure', input: ['a', 'b'], encoding_format: 'float' });
  assert.equal(e.data.length, 2);
  assert.equal((await mock.last()).path, '/openai/deployments/prod-embed/embeddings?api-version=2024-10-21');
});

test('an azure/ deployment without a key is refused upstream and relayed as 401', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'azure-nokey', messages: [{ role: 'user', content: 'Hi' }] }),
    (e) => e.status === 401 && e.error?.code === '401',
  );
});
