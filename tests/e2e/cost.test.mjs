// The cost of every request: x-litellm-response-cost on non-streamed answers
// equals the answer's tokens times the model's price (llmux's built-in table,
// LiteLLM's prices), whatever the provider's format (OpenAI pass-through,
// Anthropic, Gemini, local mock_response answers, embeddings); per-deployment
// prices override the table; an unknown model costs 0 with one warning.
// Streams carry no cost header (as LiteLLM's): their cost is computed from the
// usage the provider reports at the end, which llmux asks OpenAI-compatible
// upstreams for (stream_options.include_usage) and drops from what the client
// receives unless the client asked for it. Stream costs are checked in the
// debug log line each call writes ("call cost: id=... cost_usd=...").

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

import {
  startMock, startLlmux, mockDeployment, mockApiBase, cleanupTempDirs, collectStream, waitFor,
  MASTER_KEY, PROVIDER_KEY,
} from './lib/harness.mjs';

// Prices in pico-USD per token, from LiteLLM's model_prices_and_context_window.json.
const PRICES = {
  'gpt-4o-mini': { in: 150000, out: 600000, read: 75000 },
  'gpt-4o': { in: 2500000, out: 10000000, read: 1250000 },
  'claude-3-haiku-20240307': { in: 250000, out: 1250000, read: 30000, write: 300000 },
  'gemini-2.0-flash': { in: 100000, out: 400000, read: 25000 },
  'text-embedding-3-small': { in: 20000, out: 0 },
  override: { in: 1000000, out: 3000000 }, // the deployment's own input/output_cost_per_token
};

// Integer nano-USD, rounded once, half up: what llmux computes.
function expectedNanos(price, usage) {
  const prompt = BigInt(usage.prompt_tokens ?? 0);
  const completion = BigInt(usage.completion_tokens ?? 0);
  const cached = BigInt(usage.prompt_tokens_details?.cached_tokens || usage.cache_read_input_tokens || 0);
  const created = BigInt(usage.cache_creation_input_tokens ?? 0);
  const p = (x) => BigInt(x);
  const pico = (prompt - cached - created) * p(price.in) + cached * p(price.read ?? price.in)
    + created * p(price.write ?? price.in) + completion * p(price.out);
  return Number((pico + 500n) / 1000n);
}

// The header as LiteLLM prints it (Python's str() of a float): decimal or 1.5e-05 style.
function assertCostHeader(value, nanos, what) {
  assert.ok(value !== null && value !== undefined, `${what}: x-litellm-response-cost is present`);
  assert.match(value, /^(\d+\.\d+|\d(\.\d+)?e-\d\d)$/, `${what}: header format (${value})`);
  assert.equal(parseFloat(value), nanos / 1e9, `${what}: header ${value} = ${nanos} nano-USD`);
}

let mock;
let proxy;
let client;

const U = { usage_prompt: 1234, usage_completion: 567 };
const mockRoot = (d) => mockApiBase(mock, d).replace(/\/v1$/, '');

before(async () => {
  mock = await startMock();
  proxy = await startLlmux({
    model_list: [
      mockDeployment(mock, { name: 'mini', upstream: 'gpt-4o-mini', directives: U }),
      mockDeployment(mock, { name: 'mini-default', upstream: 'gpt-4o-mini' }),
      mockDeployment(mock, { name: 'mini-cached', upstream: 'gpt-4o-mini', directives: { ...U, cache_read: 1024 } }),
      mockDeployment(mock, { name: 'emb', upstream: 'text-embedding-3-small' }),
      mockDeployment(mock, {
        name: 'override', upstream: 'my-finetune', directives: U,
        params: { input_cost_per_token: 1e-06, output_cost_per_token: 3e-06 },
      }),
      mockDeployment(mock, { name: 'unknown', upstream: 'no-such-model-anywhere', directives: U }),
      {
        model_name: 'claude',
        litellm_params: {
          model: 'claude-3-haiku-20240307', api_key: PROVIDER_KEY, timeout: 5,
          api_base: mockRoot({ ...U, cache_read: 300, cache_creation: 100 }),
        },
      },
      {
        model_name: 'gemini',
        litellm_params: { model: 'gemini/gemini-2.0-flash', api_key: PROVIDER_KEY, timeout: 5, api_base: mockRoot(U) },
      },
      { model_name: 'local', litellm_params: { model: 'openai/gpt-4o', mock_response: 'Hello from the local answer' } },
    ],
    general_settings: { master_key: MASTER_KEY },
  }, { extraArgs: ['--detailed_debug'], workers: 1 });
  client = new OpenAI({ apiKey: MASTER_KEY, baseURL: proxy.baseURL, maxRetries: 0 });
});

after(async () => {
  await proxy?.stop();
  await mock?.stop();
  await cleanupTempDirs();
});

// The cost llmux logged for a call (the x-litellm-call-id of its response).
async function loggedCost(id) {
  let m;
  await waitFor(() => {
    m = proxy.logs().match(new RegExp(`call cost: id=${id} .*prompt_tokens=(\\d+) completion_tokens=(\\d+) cached_tokens=(\\d+) cache_creation_tokens=(\\d+) cost_usd=(\\S+)`));
    return m;
  }, { what: `cost log line of ${id}` });
  return {
    prompt: Number(m[1]), completion: Number(m[2]), cached: Number(m[3]), created: Number(m[4]), usd: m[5],
  };
}

test('OpenAI pass-through: the cost header is tokens x price', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'mini', messages: [{ role: 'user', content: 'Hello' }] }).withResponse();
  assert.equal(data.usage.prompt_tokens, 1234);
  assert.equal(data.usage.completion_tokens, 567);
  const nanos = expectedNanos(PRICES['gpt-4o-mini'], data.usage);
  assert.equal(nanos, 525300); // 1234 x 0.15 + 567 x 0.6 USD per million
  assertCostHeader(response.headers.get('x-litellm-response-cost'), nanos, 'openai');
  assert.equal(response.headers.get('x-litellm-response-cost'), '0.0005253');
  // The mock's own usage, without directives, is priced the same way.
  const r2 = await client.chat.completions
    .create({ model: 'mini-default', messages: [{ role: 'user', content: 'Say hello to the cost test' }] })
    .withResponse();
  assertCostHeader(r2.response.headers.get('x-litellm-response-cost'),
    expectedNanos(PRICES['gpt-4o-mini'], r2.data.usage), 'openai, mock usage');
});

test('OpenAI cached prompt tokens are priced at the cache-read rate, streams included', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'mini-cached', messages: [{ role: 'user', content: 'Hello' }] }).withResponse();
  assert.equal(data.usage.prompt_tokens_details.cached_tokens, 1024);
  const nanos = expectedNanos(PRICES['gpt-4o-mini'], data.usage);
  assert.equal(nanos, (210 * 150000 + 1024 * 75000 + 567 * 600000) / 1000);
  assertCostHeader(response.headers.get('x-litellm-response-cost'), nanos, 'openai cached');
  const s = await collectStream(proxy.baseURL, '/v1/chat/completions',
    { model: 'mini-cached', stream: true, messages: [{ role: 'user', content: 'Hello' }] });
  assert.equal(s.status, 200);
  const cost = await loggedCost(s.headers.get('x-litellm-call-id'));
  assert.equal(cost.cached, 1024);
  assert.equal(parseFloat(cost.usd), nanos / 1e9);
});

test('Anthropic upstream: cache reads and writes are priced at their own rates', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'claude', messages: [{ role: 'user', content: 'Hello' }] }).withResponse();
  // prompt_tokens include the cache reads and writes (OpenAI's convention).
  assert.equal(data.usage.prompt_tokens, 1234 + 300 + 100);
  assert.equal(data.usage.prompt_tokens_details.cached_tokens, 300);
  assert.equal(data.usage.cache_creation_input_tokens, 100);
  const nanos = expectedNanos(PRICES['claude-3-haiku-20240307'], data.usage);
  assert.equal(nanos, (1234 * 250000 + 300 * 30000 + 100 * 300000 + 567 * 1250000 + 500) / 1000 | 0);
  assertCostHeader(response.headers.get('x-litellm-response-cost'), nanos, 'anthropic');
});

test('Gemini upstream: the cost header is tokens x price', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'gemini', messages: [{ role: 'user', content: 'Hello' }] }).withResponse();
  assert.equal(data.usage.prompt_tokens, 1234);
  const nanos = expectedNanos(PRICES['gemini-2.0-flash'], data.usage);
  assertCostHeader(response.headers.get('x-litellm-response-cost'), nanos, 'gemini');
});

test('Anthropic SDK client on /v1/messages gets the same header', async () => {
  const anthropic = new Anthropic({ apiKey: MASTER_KEY, baseURL: proxy.baseURL, maxRetries: 0 });
  const { data, response } = await anthropic.messages
    .create({ model: 'mini', max_tokens: 100, messages: [{ role: 'user', content: 'Hello' }] }).withResponse();
  assert.equal(data.usage.input_tokens, 1234);
  assertCostHeader(response.headers.get('x-litellm-response-cost'),
    expectedNanos(PRICES['gpt-4o-mini'], { prompt_tokens: 1234, completion_tokens: 567 }), 'messages');
});

test('mock_response answers are billed from their estimated usage', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'local', messages: [{ role: 'user', content: 'Hello there, local model' }] }).withResponse();
  assert.ok(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0);
  assertCostHeader(response.headers.get('x-litellm-response-cost'), expectedNanos(PRICES['gpt-4o'], data.usage), 'mock_response');
});

test('embeddings are billed for their prompt tokens', async () => {
  const { data, response } = await client.embeddings
    .create({ model: 'emb', input: ['the quick brown fox', 'jumps over the lazy dog'] }).withResponse();
  assert.ok(data.usage.prompt_tokens > 0);
  assertCostHeader(response.headers.get('x-litellm-response-cost'),
    expectedNanos(PRICES['text-embedding-3-small'], data.usage), 'embeddings');
});

test('per-deployment prices override the table; an unknown model costs 0 with one warning', async () => {
  const o = await client.chat.completions.create({ model: 'override', messages: [{ role: 'user', content: 'Hi' }] }).withResponse();
  assertCostHeader(o.response.headers.get('x-litellm-response-cost'), expectedNanos(PRICES.override, o.data.usage), 'override');
  assert.equal(o.response.headers.get('x-litellm-response-cost'), '0.002935');
  for (let i = 0; i < 3; i++) {
    const u = await client.chat.completions.create({ model: 'unknown', messages: [{ role: 'user', content: 'Hi' }] }).withResponse();
    assert.equal(u.response.headers.get('x-litellm-response-cost'), '0.0');
  }
  const warnings = proxy.logs().split('\n').filter((l) => l.includes("no price known for model 'no-such-model-anywhere'"));
  assert.equal(warnings.length, 1, 'exactly one warning for the unknown model');
});

test('errors carry no cost header', async () => {
  const r = await fetch(`${proxy.baseURL}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
  });
  assert.equal(r.status, 400);
  assert.equal(r.headers.get('x-litellm-response-cost'), null);
  await r.arrayBuffer();
});

function usageChunks(s) {
  return s.chunks.filter((c) => c && Array.isArray(c.choices) && c.choices.length === 0 && c.usage);
}

test('OpenAI stream without include_usage: llmux asks upstream for usage, bills it, the client sees no usage chunk', async () => {
  await mock.reset();
  const s = await collectStream(proxy.baseURL, '/v1/chat/completions',
    { model: 'mini', stream: true, messages: [{ role: 'user', content: 'Hello' }] });
  assert.equal(s.status, 200);
  assert.ok(s.done);
  assert.equal(s.headers.get('x-litellm-response-cost'), null, 'streams carry no cost header');
  assert.equal(usageChunks(s).length, 0, 'no usage chunk for a client that did not ask');
  assert.ok(s.chunks.every((c) => !c.usage), 'no chunk carries usage');
  assert.ok(s.text.length > 0);
  const up = JSON.parse((await mock.last()).body);
  assert.deepEqual(up.stream_options, { include_usage: true });
  const cost = await loggedCost(s.headers.get('x-litellm-call-id'));
  assert.deepEqual([cost.prompt, cost.completion], [1234, 567]);
  assert.equal(parseFloat(cost.usd), 525300 / 1e9);
});

test('OpenAI stream with include_usage: the client gets the usage chunk, its options pass through', async () => {
  const s = await collectStream(proxy.baseURL, '/v1/chat/completions', {
    model: 'mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hello' }],
  });
  assert.equal(s.status, 200);
  const u = usageChunks(s);
  assert.equal(u.length, 1);
  assert.equal(u[0].usage.prompt_tokens, 1234);
  assert.equal(u[0].usage.completion_tokens, 567);
  const cost = await loggedCost(s.headers.get('x-litellm-call-id'));
  assert.equal(parseFloat(cost.usd), expectedNanos(PRICES['gpt-4o-mini'], u[0].usage) / 1e9);
  // include_usage: false is turned on upstream, and the chunk is still dropped.
  const s2 = await collectStream(proxy.baseURL, '/v1/chat/completions', {
    model: 'mini', stream: true, stream_options: { include_usage: false }, messages: [{ role: 'user', content: 'Hello' }],
  });
  assert.equal(usageChunks(s2).length, 0);
  assert.deepEqual(JSON.parse((await mock.last()).body).stream_options, { include_usage: true });
  const c2 = await loggedCost(s2.headers.get('x-litellm-call-id'));
  assert.equal(c2.prompt, 1234);
});

test('OpenAI SDK stream: same content with and without the usage chunk', async () => {
  const plain = [];
  for await (const ch of await client.chat.completions.create({ model: 'mini', stream: true, messages: [{ role: 'user', content: 'Hi' }] })) {
    plain.push(ch);
  }
  assert.ok(plain.every((c) => c.choices.length === 1 && !c.usage));
  const withUsage = [];
  for await (const ch of await client.chat.completions.create({
    model: 'mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hi' }],
  })) {
    withUsage.push(ch);
  }
  assert.equal(withUsage.length, plain.length + 1);
  assert.equal(withUsage.at(-1).usage.total_tokens, 1234 + 567);
});

test('translated streams (Anthropic, Gemini) are billed whether or not the client asked for usage', async () => {
  for (const [model, price, extra] of [
    ['claude', PRICES['claude-3-haiku-20240307'], { cache_read_input_tokens: 300, cache_creation_input_tokens: 100 }],
    ['gemini', PRICES['gemini-2.0-flash'], {}],
  ]) {
    for (const asked of [false, true]) {
      const body = { model, stream: true, messages: [{ role: 'user', content: 'Hello' }] };
      if (asked) body.stream_options = { include_usage: true };
      const s = await collectStream(proxy.baseURL, '/v1/chat/completions', body);
      assert.equal(s.status, 200, `${model} stream`);
      assert.ok(s.done);
      assert.equal(usageChunks(s).length, asked ? 1 : 0, `${model}: usage chunk only when asked (${asked})`);
      const cost = await loggedCost(s.headers.get('x-litellm-call-id'));
      const prompt = model === 'claude' ? 1234 + 400 : 1234;
      assert.equal(cost.prompt, prompt, `${model} prompt tokens`);
      assert.equal(cost.completion, 567);
      const want = expectedNanos(price, { prompt_tokens: prompt, completion_tokens: 567, ...extra });
      assert.equal(parseFloat(cost.usd), want / 1e9, `${model} stream cost`);
    }
  }
});

test('mock_response streams are billed; the usage chunk only when asked', async () => {
  for (const asked of [false, true]) {
    const body = { model: 'local', stream: true, messages: [{ role: 'user', content: 'Hello there' }] };
    if (asked) body.stream_options = { include_usage: true };
    const s = await collectStream(proxy.baseURL, '/v1/chat/completions', body);
    assert.equal(usageChunks(s).length, asked ? 1 : 0);
    const cost = await loggedCost(s.headers.get('x-litellm-call-id'));
    assert.ok(cost.prompt > 0 && cost.completion > 0);
    assert.equal(parseFloat(cost.usd), expectedNanos(PRICES['gpt-4o'], { prompt_tokens: cost.prompt, completion_tokens: cost.completion }) / 1e9);
  }
});

test('spend_logs rows carry the tokens and the exact cost, streams included', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'llmux-cost-'));
  const db = path.join(dir, 'llmux.db');
  const sql = (q) => execFileSync('sqlite3', [db, q], { encoding: 'utf8' }).trim();
  const p2 = await startLlmux({
    model_list: [
      mockDeployment(mock, { name: 'mini', upstream: 'gpt-4o-mini', directives: { ...U, cache_read: 1024 } }),
      {
        model_name: 'claude',
        litellm_params: {
          model: 'claude-3-haiku-20240307', api_key: PROVIDER_KEY, timeout: 5,
          api_base: mockRoot({ ...U, cache_read: 300, cache_creation: 100 }),
        },
      },
      mockDeployment(mock, { name: 'broken', upstream: 'gpt-4o-mini', directives: { status: 500 } }),
    ],
    general_settings: { master_key: MASTER_KEY, database_url: `sqlite:///${db}` },
  }, { workers: 2 });
  try {
    const want = {};
    const mini = (extra) => expectedNanos(PRICES['gpt-4o-mini'], { prompt_tokens: 1234, completion_tokens: 567, prompt_tokens_details: { cached_tokens: 1024 }, ...extra });
    const claude = expectedNanos(PRICES['claude-3-haiku-20240307'], { prompt_tokens: 1634, completion_tokens: 567, cache_read_input_tokens: 300, cache_creation_input_tokens: 100 });
    const r = await fetch(`${p2.baseURL}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mini', messages: [{ role: 'user', content: 'Hi' }] }),
    });
    await r.json();
    assert.equal(parseFloat(r.headers.get('x-litellm-response-cost')), mini() / 1e9);
    want[r.headers.get('x-litellm-call-id')] = `1234|567|1801|1024|${mini()}|success`;
    for (const [model, nanos, prompt, cached] of [['mini', mini(), 1234, 1024], ['claude', claude, 1634, 300]]) {
      for (const asked of [false, true]) {
        const body = { model, stream: true, messages: [{ role: 'user', content: 'Hi' }] };
        if (asked) body.stream_options = { include_usage: true };
        const s = await collectStream(p2.baseURL, '/v1/chat/completions', body);
        assert.equal(s.status, 200);
        want[s.headers.get('x-litellm-call-id')] = `${prompt}|567|${prompt + 567}|${cached}|${nanos}|success`;
      }
    }
    const bad = await fetch(`${p2.baseURL}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'broken', messages: [{ role: 'user', content: 'Hi' }] }),
    });
    await bad.text();
    assert.equal(bad.status, 500);
    assert.equal(bad.headers.get('x-litellm-response-cost'), null);
    want[bad.headers.get('x-litellm-call-id')] = '0|0|0|0|0|failure';
    const n = Object.keys(want).length;
    await waitFor(() => sql('SELECT COUNT(*) FROM lx_spend_logs') === String(n), { what: `${n} rows` });
    for (const [id, row] of Object.entries(want)) {
      assert.equal(sql(`SELECT prompt_tokens, completion_tokens, total_tokens, cache_read_tokens, spend_nanos, status FROM lx_spend_logs WHERE request_id = '${id}'`), row, id);
    }
    const total = Object.values(want).reduce((a, row) => a + Number(row.split('|')[4]), 0);
    assert.equal(sql('SELECT SUM(spend_nanos) FROM lx_spend_logs'), String(total));
  } finally {
    assert.equal(await p2.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  }
});
