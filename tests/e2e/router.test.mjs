// The router: load-balancing strategies, retries, fallbacks, cooldowns and
// timeouts, against llmux-mock fault injection. A deployment that must fail
// points at its own mock process (`bad`), so that mock's request counter
// tells exactly how often llmux called it. Traffic splits are checked within
// a stated tolerance (binomial spread over a few hundred requests is ~±4%).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import {
  startMock, startLlmux, mockApiBase, cleanupTempDirs, collectStream, request, sleep, waitFor,
  MASTER_KEY, PROVIDER_KEY,
} from './lib/harness.mjs';

let mock; // healthy
let bad; // fails however its api_base says
let spare; // a second healthy mock, counted separately

before(async () => {
  [mock, bad, spare] = await Promise.all([startMock(), startMock(), startMock()]);
});

after(async () => {
  await Promise.all([mock?.stop(), bad?.stop(), spare?.stop()]);
  await cleanupTempDirs();
});

const MESSAGES = [{ role: 'user', content: 'Say hello' }];

function dep(name, m, { directives, id, params = {}, upstream = 'gpt-4o-mini', info = {} } = {}) {
  return {
    model_name: name,
    litellm_params: {
      model: `openai/${upstream}`,
      api_base: mockApiBase(m, directives),
      api_key: PROVIDER_KEY,
      timeout: 5,
      stream_timeout: 2,
      ...params,
    },
    ...(id || Object.keys(info).length ? { model_info: { ...(id ? { id } : {}), ...info } } : {}),
  };
}

// A healthy deployment (id <name>-good, on mock) and one answering `status` (<name>-bad, on bad).
const goodAndBad = (name, status = 500) => [
  dep(name, mock, { id: `${name}-good` }),
  dep(name, bad, { id: `${name}-bad`, directives: { status } }),
];

async function chat(proxy, model, extra = {}, headers = {}) {
  return request(proxy.baseURL, '/chat/completions', { body: { model, messages: MESSAGES, ...extra }, headers });
}

// n requests, `conc` at a time; returns the x-litellm-model-id counts and every status.
async function spread(proxy, model, n, conc = 4) {
  const counts = {};
  const statuses = {};
  let next = 0;
  async function worker() {
    while (next < n) {
      next++;
      const r = await chat(proxy, model);
      statuses[r.status] = (statuses[r.status] || 0) + 1;
      const id = r.headers.get('x-litellm-model-id');
      counts[id] = (counts[id] || 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: conc }, worker));
  return { counts, statuses };
}

const requests = async (m) => (await m.stats()).requests;

// withProxy(config[, options], fn): fn(proxy) with a gateway started as startLlmux(config, options)
// and stopped afterwards, whatever fn did.
async function withProxy(...args) {
  const fn = args.pop();
  const proxy = await startLlmux(...args);
  try {
    return await fn(proxy);
  } finally {
    await proxy.stop();
  }
}

// ---------------------------------------------------------------------------
// The tutorial's two config blocks, word for word (plus api_base at the mock)

test("tutorial Load Balancing block: three gpt-4 deployments share the traffic (each 1/3 ± 0.1 of 600 calls, over 5 standard deviations)", async () => {
  const base = mockApiBase(mock);
  const config = `# config.yaml with load balancing
model_list:
  - model_name: gpt-4
    litellm_params:
      model: gpt-4
      api_key: os.environ/OPENAI_API_KEY_1
      api_base: ${base}
    model_info:
      mode: loadbalance

  - model_name: gpt-4
    litellm_params:
      model: gpt-4
      api_key: os.environ/OPENAI_API_KEY_2
      api_base: ${base}
    model_info:
      mode: loadbalance

  - model_name: gpt-4
    litellm_params:
      model: gpt-4
      api_key: os.environ/OPENAI_API_KEY_3
      api_base: ${base}
    model_info:
      mode: loadbalance
`;
  await withProxy(config, {
    env: { OPENAI_API_KEY_1: 'sk-one-1111111', OPENAI_API_KEY_2: 'sk-two-2222222', OPENAI_API_KEY_3: 'sk-three-333333' },
  }, async (proxy) => {
    const { counts, statuses } = await spread(proxy, 'gpt-4', 600);
    assert.deepEqual(statuses, { 200: 600 });
    const ids = Object.keys(counts);
    assert.equal(ids.length, 3, `three deployments answered: ${JSON.stringify(counts)}`);
    for (const id of ids) {
      const share = counts[id] / 600;
      assert.ok(Math.abs(share - 1 / 3) < 0.1, `deployment ${id} got ${counts[id]}/600`);
    }
    // Each deployment's own key went upstream.
    await mock.reset();
    const seen = new Set();
    for (let i = 0; i < 30; i++) {
      await chat(proxy, 'gpt-4');
      seen.add((await mock.last()).headers.authorization);
    }
    assert.deepEqual([...seen].sort(), ['Bearer sk-one-1111111', 'Bearer sk-three-333333', 'Bearer sk-two-2222222']);
  });
});

test('tutorial Model Fallbacks block: gpt-4 failing falls back to the Anthropic-format gpt-4-fallback', async () => {
  const anthropicBase = mockApiBase(mock).replace(/\/v1$/, '');
  const config = `# config.yaml
model_list:
  - model_name: gpt-4
    litellm_params:
      model: gpt-4
      api_key: os.environ/OPENAI_API_KEY
      api_base: ${mockApiBase(bad, { status: 500, error_message: 'primary down' })}
    model_info:
      mode: fallback  # Enable fallback mode

  - model_name: gpt-4-fallback
    litellm_params:
      model: claude-3-opus-20240229
      api_key: os.environ/ANTHROPIC_API_KEY
      api_base: ${anthropicBase}
    model_info:
      mode: fallback

# Fallback routing
fallback_mapping:
  gpt-4: ["gpt-4-fallback"]  # If gpt-4 fails, try claude-3

general_settings:
  database_url: "sqlite:///litellm.db"
`;
  await withProxy(config, { env: { OPENAI_API_KEY: 'sk-openai-xxxxxxxx', ANTHROPIC_API_KEY: 'sk-ant-yyyyyyyy' } }, async (proxy) => {
    await bad.reset();
    await mock.reset();
    const client = new OpenAI({ apiKey: 'unused', baseURL: proxy.baseURL, maxRetries: 0 });
    const { data, response } = await client.chat.completions.create({ model: 'gpt-4', messages: MESSAGES }).withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.choices[0].message.content, 'Hello! This is llmux-mock.');
    assert.equal(response.headers.get('x-litellm-attempted-fallbacks'), '1');
    assert.equal(response.headers.get('x-litellm-model-group'), 'gpt-4-fallback');
    assert.equal(await requests(bad), 1, 'the primary was tried first');
    const last = await mock.last();
    assert.match(last.path, /\/v1\/messages$/, 'the fallback spoke Anthropic');
    assert.equal(last.headers['x-api-key'], 'sk-ant-yyyyyyyy');

    // The same for a stream: the primary fails before its first byte.
    const s = await collectStream(proxy.baseURL, '/chat/completions', { model: 'gpt-4', messages: MESSAGES, stream: true });
    assert.equal(s.status, 200, s.body);
    assert.ok(s.done);
    assert.equal(s.text, 'Hello! This is llmux-mock.');
    assert.equal(s.headers.get('x-litellm-attempted-fallbacks'), '1');
  });
});

test('model_info.mode: fallback inside one group: the first healthy deployment serves, the next stands by; /v1/messages clients fall back too', async () => {
  await bad.reset();
  await spare.reset();
  await withProxy({
    router_settings: { fallbacks: [{ 'msg-primary': ['msg-backup'] }] },
    model_list: [
      dep('ordered', spare, { id: 'ord-primary', info: { mode: 'fallback' } }),
      dep('ordered', mock, { id: 'ord-standby', info: { mode: 'fallback' } }),
      dep('ordered-broken', bad, { id: 'ob-primary', directives: { status: 502 }, info: { mode: 'fallback' } }),
      dep('ordered-broken', mock, { id: 'ob-standby', info: { mode: 'fallback' } }),
      dep('msg-primary', bad, { directives: { status: 500 } }),
      dep('msg-backup', mock, { id: 'msg-backup-1' }),
    ],
  }, async (proxy) => {
    assert.deepEqual((await spread(proxy, 'ordered', 20, 2)).counts, { 'ord-primary': 20 });
    const { counts, statuses } = await spread(proxy, 'ordered-broken', 10, 1);
    assert.deepEqual(statuses, { 200: 10 });
    assert.deepEqual(counts, { 'ob-standby': 10 });
    const r = await request(proxy.baseURL, '/v1/messages', {
      body: { model: 'msg-primary', max_tokens: 20, messages: [{ role: 'user', content: 'Hi' }] },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.type, 'message');
    assert.equal(r.headers.get('x-litellm-model-id'), 'msg-backup-1');
    // On the OpenAI routes, the request's own (empty) list replaces the configured one.
    const e = await chat(proxy, 'msg-primary', { fallbacks: [] });
    assert.equal(e.status, 500, e.text);
    assert.equal(e.headers.get('x-litellm-attempted-fallbacks'), '0');
  });
});

// ---------------------------------------------------------------------------
// Strategies

test('simple-shuffle: weight 3:1 splits 3:1 (0.75 ± 0.08); rpm is the weight when no weight is set', async () => {
  await withProxy({
    model_list: [
      dep('w', mock, { id: 'w-heavy', params: { weight: 3 } }),
      dep('w', mock, { id: 'w-light', params: { weight: 1 } }),
      dep('r', mock, { id: 'r-big', params: { rpm: 900 } }),
      dep('r', mock, { id: 'r-small', params: { rpm: 100 } }),
    ],
  }, async (proxy) => {
    const w = await spread(proxy, 'w', 800);
    assert.ok(Math.abs(w.counts['w-heavy'] / 800 - 0.75) < 0.08, JSON.stringify(w.counts));
    const r = await spread(proxy, 'r', 600);
    assert.ok(Math.abs(r.counts['r-big'] / 600 - 0.9) < 0.07, JSON.stringify(r.counts));
  });
});

test('least-busy: a slow deployment with calls in flight gets fewer (fast share > 0.7)', async () => {
  await withProxy({
    router_settings: { routing_strategy: 'least-busy' },
    model_list: [
      dep('lb', mock, { id: 'lb-slow', directives: { latency_ms: 300 } }),
      dep('lb', mock, { id: 'lb-fast', directives: { latency_ms: 10 } }),
    ],
  }, async (proxy) => {
    const { counts } = await spread(proxy, 'lb', 60, 6);
    assert.ok((counts['lb-fast'] || 0) / 60 > 0.7, JSON.stringify(counts));
  });
});

test('latency-based-routing: once both are measured, the faster deployment takes (nearly) all', async () => {
  await withProxy({
    router_settings: { routing_strategy: 'latency-based-routing' },
    model_list: [
      dep('lat', mock, { id: 'lat-slow', directives: { latency_ms: 150 } }),
      dep('lat', mock, { id: 'lat-fast' }),
    ],
  }, { workers: 1 }, async (proxy) => {
    await spread(proxy, 'lat', 4, 1); // both get measured
    const { counts } = await spread(proxy, 'lat', 30, 1);
    assert.ok((counts['lat-fast'] || 0) >= 28, JSON.stringify(counts));
  });
});

test('usage-based-routing: a deployment at its rpm limit is skipped for the rest of the minute', async () => {
  await withProxy({
    router_settings: { routing_strategy: 'usage-based-routing-v2' },
    model_list: [
      dep('ub', mock, { id: 'ub-capped', params: { rpm: 4 } }),
      dep('ub', mock, { id: 'ub-roomy', params: { rpm: 10000 } }),
    ],
  }, async (proxy) => {
    const { counts, statuses } = await spread(proxy, 'ub', 40, 1);
    assert.deepEqual(statuses, { 200: 40 });
    // 4 per minute; a minute boundary during the test may allow 4 more.
    assert.ok((counts['ub-capped'] || 0) <= 8 && (counts['ub-capped'] || 0) >= 1, JSON.stringify(counts));
  });
});

test('cost-based-routing: the cheapest deployment serves (own prices, else the price table); when it fails, the next cheapest', async () => {
  await bad.reset();
  await withProxy({
    router_settings: { routing_strategy: 'cost-based-routing' },
    model_list: [
      dep('cost', mock, { id: 'cost-dear', upstream: 'unpriced-a', params: { input_cost_per_token: 0.00003, output_cost_per_token: 0.00006 } }),
      dep('cost', mock, { id: 'cost-cheap', upstream: 'unpriced-b', params: { input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 } }),
      dep('cost', mock, { id: 'cost-unknown', upstream: 'unpriced-c' }),
      dep('cost', mock, { id: 'cost-table', upstream: 'gpt-4' }), // the price table's gpt-4: dearer than cost-cheap
      dep('cost2', bad, { id: 'c2-cheap', directives: { status: 503 }, params: { input_cost_per_token: 0.000001 } }),
      dep('cost2', mock, { id: 'c2-dear', params: { input_cost_per_token: 0.001 } }),
      dep('cost3', mock, { id: 'c3-table', upstream: 'gpt-4o-mini' }), // priced by the built-in table
      dep('cost3', mock, { id: 'c3-dear', upstream: 'unpriced-d', params: { input_cost_per_token: 0.001 } }),
    ],
  }, async (proxy) => {
    const { counts } = await spread(proxy, 'cost', 20, 2);
    assert.deepEqual(counts, { 'cost-cheap': 20 });
    assert.deepEqual((await spread(proxy, 'cost3', 10, 2)).counts, { 'c3-table': 10 });
    const r = await chat(proxy, 'cost2');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-litellm-model-id'), 'c2-dear');
    assert.equal(r.headers.get('x-litellm-attempted-retries'), '1');
  });
});

// ---------------------------------------------------------------------------
// Failures, retries, cooldowns

test('a failing deployment is routed around with no client error, then cooled down; it is tried again after cooldown_time', async () => {
  await bad.reset();
  await withProxy({
    router_settings: { cooldown_time: 1 },
    model_list: goodAndBad('mix'),
  }, async (proxy) => {
    const { statuses } = await spread(proxy, 'mix', 40, 2);
    assert.deepEqual(statuses, { 200: 40 }, 'no client-visible error');
    const n = await requests(bad);
    assert.ok(n >= 1 && n <= 3, `the bad deployment was called ${n} times in ~the first second`);
    await sleep(1300);
    await spread(proxy, 'mix', 20, 1);
    assert.ok((await requests(bad)) > n, 'tried again once the cooldown ended');
    assert.match(proxy.logs(), /mix-bad of model group 'mix' is cooling down/);
  });
});

test('allowed_fails: a deployment cools down after more than allowed_fails failures in a minute', async () => {
  await bad.reset();
  await withProxy({
    router_settings: { allowed_fails: 2, cooldown_time: 60 },
    model_list: goodAndBad('af'),
  }, { workers: 1 }, async (proxy) => {
    const { statuses } = await spread(proxy, 'af', 40, 1);
    assert.deepEqual(statuses, { 200: 40 });
    assert.equal(await requests(bad), 3, 'three failures, then cooling');
  });
});

test('every deployment cooling down: 429 with retry-after and a message that says so', async () => {
  await bad.reset();
  await withProxy({
    router_settings: { cooldown_time: 30 },
    model_list: [
      dep('dead', bad, { id: 'dead-1', directives: { status: 500 } }),
      dep('dead', bad, { id: 'dead-2', directives: { status: 503 } }),
    ],
  }, async (proxy) => {
    const first = await chat(proxy, 'dead');
    assert.ok(first.status === 500 || first.status === 503, first.text);
    assert.equal(first.headers.get('x-litellm-attempted-retries'), '1', 'the other deployment was tried');
    const r = await chat(proxy, 'dead');
    assert.equal(r.status, 429, r.text);
    const ra = Number(r.headers.get('retry-after'));
    assert.ok(ra >= 25 && ra <= 30, `retry-after ${ra}`);
    assert.match(r.json.error.message, /every deployment is cooling down/);
    assert.doesNotMatch(r.json.error.message, /Invalid model|not found/i);
    assert.equal(r.json.error.code, '429');
    assert.equal(await requests(bad), 2, 'no call while cooling');
    const client = new OpenAI({ apiKey: 'x', baseURL: proxy.baseURL, maxRetries: 0 });
    await assert.rejects(client.chat.completions.create({ model: 'dead', messages: MESSAGES }), (e) => e instanceof OpenAI.RateLimitError);
  });
});

test('retry-after honoured: a retry of the same deployment waits what the upstream said', async () => {
  await bad.reset();
  await withProxy({
    router_settings: { num_retries: 1 },
    model_list: [dep('slowdown', bad, { directives: { status: 429, retry_after: 1 } })],
  }, async (proxy) => {
    const t0 = Date.now();
    const r = await chat(proxy, 'slowdown');
    const ms = Date.now() - t0;
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
    assert.equal(r.headers.get('x-litellm-attempted-retries'), '1');
    assert.equal(await requests(bad), 2);
    assert.ok(ms >= 950 && ms < 3000, `answered after ${ms} ms`);
  });
});

test('a client that leaves during a retry backoff: no retry is sent, the gateway stays up', async () => {
  await bad.reset();
  await withProxy({
    litellm_settings: { num_retries: 2 },
    model_list: [dep('waiting', bad, { directives: { status: 429, retry_after: 2 } }), dep('fine', mock)],
  }, async (proxy) => {
    const ac = new AbortController();
    const p = chat(proxy, 'waiting', {}, {}).catch((e) => e);
    const aborted = request(proxy.baseURL, '/chat/completions', { body: { model: 'waiting', messages: MESSAGES }, signal: ac.signal }).catch((e) => e);
    await waitFor(async () => (await requests(bad)) >= 2, { what: 'both first attempts' });
    ac.abort();
    assert.equal((await aborted).name, 'AbortError');
    const r = await p; // the other client waits out its retries
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('x-litellm-attempted-retries'), '2');
    assert.equal(await requests(bad), 4, 'three calls for the patient client, one for the one that left');
    assert.equal((await chat(proxy, 'fine')).status, 200);
  });
});

test('retry_policy per error class; 400s are not retried; per-request num_retries and fallbacks', async () => {
  await bad.reset();
  await withProxy({
    router_settings: {
      num_retries: 3,
      retry_after: 0,
      retry_policy: { InternalServerErrorRetries: 0, RateLimitErrorRetries: 2 },
      model_group_retry_policy: { p500g: { InternalServerErrorRetries: 1 } },
    },
    model_list: [
      dep('p500', bad, { directives: { status: 500 } }),
      dep('p500g', bad, { directives: { status: 500 } }),
      dep('p429', bad, { directives: { status: 429, retry_after: 0 } }),
      dep('p400', bad, { directives: { status: 400 } }),
      dep('good', mock, { id: 'good-1' }),
    ],
  }, async (proxy) => {
    assert.equal((await chat(proxy, 'p500')).status, 500);
    assert.equal(await requests(bad), 1, 'InternalServerErrorRetries: 0');
    await bad.reset();
    assert.equal((await chat(proxy, 'p500g')).status, 500);
    assert.equal(await requests(bad), 2, "model_group_retry_policy: the group's own count");
    await bad.reset();
    const r429 = await chat(proxy, 'p429');
    assert.equal(r429.status, 429);
    assert.equal(r429.headers.get('x-litellm-attempted-retries'), '2');
    assert.equal(await requests(bad), 3, 'RateLimitErrorRetries: 2');
    await bad.reset();
    assert.equal((await chat(proxy, 'p400')).status, 400);
    assert.equal(await requests(bad), 1, 'a 400 is not retried');
    // The request's own fallbacks; neither key reaches the upstream.
    await mock.reset();
    const fb = await chat(proxy, 'p500', { fallbacks: ['good'], num_retries: 0 });
    assert.equal(fb.status, 200, fb.text);
    assert.equal(fb.headers.get('x-litellm-model-id'), 'good-1');
    assert.equal(fb.headers.get('x-litellm-attempted-fallbacks'), '1');
    const sent = JSON.parse((await mock.last()).body);
    assert.equal(sent.fallbacks, undefined);
    assert.equal(sent.num_retries, undefined);
    // A 400 does not fall back (the request is at fault).
    assert.equal((await chat(proxy, 'p400', { fallbacks: ['good'] })).status, 400);
  });
});

// ---------------------------------------------------------------------------
// Fallback kinds

test("context_window_fallbacks on the provider's context-length error; other fallbacks do not apply to it", async () => {
  await spare.reset();
  const ctxMsg = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9100 tokens.";
  await withProxy({
    router_settings: {
      context_window_fallbacks: [{ small: ['big'] }],
      fallbacks: [{ small2: ['other'] }],
    },
    model_list: [
      dep('small', bad, { directives: { status: 400, error_message: ctxMsg } }),
      dep('small2', bad, { directives: { status: 400, error_message: ctxMsg } }),
      dep('big', mock, { id: 'big-1' }),
      dep('other', spare, { id: 'other-1' }),
    ],
  }, async (proxy) => {
    const r = await chat(proxy, 'small');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-litellm-model-id'), 'big-1');
    const r2 = await chat(proxy, 'small2');
    assert.equal(r2.status, 400, 'a context-window error uses only context_window_fallbacks');
    assert.match(r2.json.error.message, /maximum context length/);
    assert.equal(await requests(spare), 0);
  });
});

test('enable_pre_call_checks: a prompt larger than a deployment\'s context window never reaches it', async () => {
  await bad.reset();
  await withProxy({
    router_settings: { enable_pre_call_checks: true, context_window_fallbacks: [{ tiny: ['roomy'] }] },
    model_list: [
      dep('mixed', bad, { id: 'mixed-small', info: { max_input_tokens: 10 } }),
      dep('mixed', mock, { id: 'mixed-large', info: { max_input_tokens: 100000 } }),
      dep('tiny', bad, { id: 'tiny-1', info: { max_input_tokens: 10 } }),
      dep('tiny-alone', bad, { id: 'tiny-2', info: { max_input_tokens: 10 } }),
      dep('roomy', mock, { id: 'roomy-1' }),
    ],
  }, async (proxy) => {
    const long = [{ role: 'user', content: 'word '.repeat(60) }]; // about 75 tokens
    for (let i = 0; i < 10; i++) {
      const r = await chat(proxy, 'mixed', { messages: long });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-litellm-model-id'), 'mixed-large');
    }
    const f = await chat(proxy, 'tiny', { messages: long });
    assert.equal(f.status, 200, f.text);
    assert.equal(f.headers.get('x-litellm-model-id'), 'roomy-1');
    const e = await chat(proxy, 'tiny-alone', { messages: long });
    assert.equal(e.status, 400, e.text);
    assert.match(e.json.error.message, /maximum context length is 10 tokens/);
    assert.equal(await requests(bad), 0, 'no deployment got a prompt it cannot take');
    assert.equal((await chat(proxy, 'tiny-alone')).status, 200, 'a short prompt fits');
  });
});

test('content_policy_fallbacks, default_fallbacks and max_fallbacks', async () => {
  await withProxy({
    router_settings: {
      content_policy_fallbacks: [{ strict: ['lenient'] }],
      default_fallbacks: ['chain-a', 'chain-b', 'ok'],
      max_fallbacks: 2,
    },
    model_list: [
      dep('strict', bad, { directives: { status: 400, error_message: 'Your request was rejected as a result of our safety system.' } }),
      dep('lenient', mock, { id: 'lenient-1' }),
      dep('lonely', bad, { directives: { status: 502 } }),
      dep('chain-a', bad, { directives: { status: 503 } }),
      dep('chain-b', bad, { directives: { status: 503 } }),
      dep('ok', mock, { id: 'ok-1' }),
    ],
  }, async (proxy) => {
    const r = await chat(proxy, 'strict');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-litellm-model-id'), 'lenient-1');
    // default_fallbacks: lonely -> chain-a -> chain-b, then max_fallbacks (2) stops before ok.
    const r2 = await chat(proxy, 'lonely');
    assert.equal(r2.status, 503, r2.text);
    assert.equal(r2.headers.get('x-litellm-attempted-fallbacks'), '2');
  });
});

test('a stream falls back before its first byte, never after', async () => {
  await spare.reset();
  await withProxy({
    router_settings: { fallbacks: [{ 'pre': ['backup'] }, { 'mid': ['backup'] }, { 'silent': ['backup'] }] },
    model_list: [
      dep('pre', bad, { directives: { status: 503 } }),
      dep('mid', bad, { directives: { reset_after: 2, chunks: 5, interval_ms: 30 } }),
      dep('silent', bad, { directives: { hang: 1 }, params: { stream_timeout: 0.5 } }),
      dep('backup', spare, { id: 'backup-1', upstream: 'backup-model' }),
    ],
  }, async (proxy) => {
    const s = await collectStream(proxy.baseURL, '/chat/completions', { model: 'pre', messages: MESSAGES, stream: true });
    assert.equal(s.status, 200);
    assert.ok(s.done, 'complete stream from the fallback');
    assert.equal(s.headers.get('x-litellm-model-id'), 'backup-1');
    assert.equal(s.chunks[0].model, 'backup-model');
    const t0 = Date.now();
    const h = await collectStream(proxy.baseURL, '/chat/completions', { model: 'silent', messages: MESSAGES, stream: true });
    assert.equal(h.status, 200);
    assert.ok(h.done, 'a stream with no first token within stream_timeout falls back');
    assert.ok(Date.now() - t0 < 3000);
    assert.equal(await requests(spare), 2);
    const m = await collectStream(proxy.baseURL, '/chat/completions', { model: 'mid', messages: MESSAGES, stream: true });
    assert.equal(m.status, 200);
    assert.ok(!m.done, 'the cut stream is not completed by another model');
    assert.ok(m.text.length > 0, 'the first deltas arrived');
    assert.ok(m.chunks.some((j) => j && j.error) || m.error || m.incomplete !== undefined, 'the client sees the cut');
    assert.equal(await requests(spare), 2, 'no fallback after the first byte');
  });
});

// ---------------------------------------------------------------------------
// Timeouts, targeting, headers, reload

test('x-litellm-timeout bounds one request; model: <model_info.id> targets one deployment; headers', async () => {
  await withProxy({
    router_settings: { model_group_alias: { 'my-alias': 'pair' } },
    model_list: [
      dep('sluggish', mock, { directives: { latency_ms: 2000 } }),
      dep('pair', mock, { id: 'pair-a' }),
      dep('pair', mock, { id: 'pair-b' }),
    ],
  }, async (proxy) => {
    const t0 = Date.now();
    const r = await chat(proxy, 'sluggish', {}, { 'x-litellm-timeout': '0.4' });
    assert.equal(r.status, 504, r.text);
    assert.ok(Date.now() - t0 < 1500);
    for (let i = 0; i < 10; i++) {
      const p = await chat(proxy, 'pair-b');
      assert.equal(p.status, 200);
      assert.equal(p.headers.get('x-litellm-model-id'), 'pair-b');
      assert.equal(p.headers.get('x-litellm-model-group'), 'pair');
    }
    const a = await chat(proxy, 'my-alias');
    assert.equal(a.status, 200);
    assert.equal(a.headers.get('x-litellm-model-group'), 'pair');
    assert.equal(a.headers.get('x-litellm-model-api-base'), `${mock.url}/v1`);
    assert.equal(a.headers.get('x-litellm-attempted-retries'), '0');
    assert.equal(a.headers.get('x-litellm-attempted-fallbacks'), '0');
  });
});

test('a cooldown survives a SIGHUP reload for unchanged deployment ids', async () => {
  await bad.reset();
  const config = {
    router_settings: { cooldown_time: 60 },
    model_list: goodAndBad('hup'),
  };
  await withProxy(config, async (proxy) => {
    await spread(proxy, 'hup', 10, 1);
    assert.equal(await requests(bad), 1);
    await proxy.writeConfig(config);
    proxy.proc.kill('SIGHUP');
    await waitFor(() => /config reloaded/.test(proxy.logs()), { what: 'reload' });
    const { statuses } = await spread(proxy, 'hup', 10, 1);
    assert.deepEqual(statuses, { 200: 10 });
    assert.equal(await requests(bad), 1, 'still cooling after the reload');
  });
});

test('a provider outage during a load test: no client-visible error while another deployment serves', async () => {
  await bad.reset();
  await withProxy({
    model_list: [
      dep('load', mock, { id: 'load-good' }),
      dep('load', bad, { id: 'load-reset', directives: { reset_after: 0 } }),
      dep('load', bad, { id: 'load-503', directives: { status: 503 } }),
    ],
  }, async (proxy) => {
    const { statuses } = await spread(proxy, 'load', 300, 16);
    assert.deepEqual(statuses, { 200: 300 });
  });
});

// ---------------------------------------------------------------------------
// Deployment health

test('GET /health/models: runs a check round (admins only); /health stays cheap', async () => {
  await bad.reset();
  await spare.reset();
  await withProxy({
    general_settings: { master_key: MASTER_KEY },
    model_list: [
      dep('hm', spare, { id: 'hm-good' }),
      // The upstream quotes the key in its error: the report must not.
      dep('hm', bad, { id: 'hm-bad', directives: { status: 500 }, params: { extra_headers: { 'x-mock-error-message': `boom ${PROVIDER_KEY}` } } }),
      { model_name: 'hm-local', litellm_params: { model: 'openai/x', mock_response: 'hi' }, model_info: { id: 'hm-local' } },
      { model_name: 'hm-env', litellm_params: { model: 'openai/x', api_key: 'os.environ/LLMUX_E2E_UNSET_KEY' }, model_info: { id: 'hm-env' } },
      dep('hm-emb', spare, { id: 'hm-emb', upstream: 'text-embedding-3-small', info: { mode: 'embedding' } }),
    ],
  }, async (proxy) => {
    const h = await request(proxy.baseURL, '/health', { method: 'GET', key: null });
    assert.equal(h.status, 200);
    assert.equal(await requests(spare) + await requests(bad), 0, '/health calls no deployment');
    assert.equal((await request(proxy.baseURL, '/health/models', { method: 'GET', key: null })).status, 401);
    const r = await request(proxy.baseURL, '/health/models', { method: 'GET' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.healthy_count, 3);
    assert.equal(r.json.unhealthy_count, 2);
    assert.deepEqual(r.json.healthy_endpoints.map((e) => e.model_id).sort(), ['hm-emb', 'hm-good', 'hm-local']);
    const badOne = r.json.unhealthy_endpoints.find((e) => e.model_id === 'hm-bad');
    assert.match(badOne.error, /HTTP 500: boom/);
    assert.equal(badOne.api_base, mockApiBase(bad, { status: 500 }));
    assert.match(r.json.unhealthy_endpoints.find((e) => e.model_id === 'hm-env').error, /LLMUX_E2E_UNSET_KEY/);
    assert.ok(!r.text.includes(PROVIDER_KEY), 'no provider key in the report');
    const stats = await spare.stats();
    assert.equal(stats.by_path['/v1/chat/completions'], 1);
    assert.equal(stats.by_path['/v1/embeddings'], 1);
  });
});

test('background_health_checks: probes every health_check_interval; /health/models reports without calling', async () => {
  await bad.reset();
  await withProxy({
    general_settings: { master_key: MASTER_KEY, background_health_checks: true, health_check_interval: 1 },
    model_list: goodAndBad('bg', 503),
  }, async (proxy) => {
    await waitFor(async () => (await requests(bad)) >= 2, { timeoutMs: 5000, what: 'two background rounds' });
    const before = await requests(bad);
    const r = await request(proxy.baseURL, '/health/models', { method: 'GET' });
    assert.equal(r.status, 200, r.text);
    assert.ok((await requests(bad)) - before <= 1, 'the report itself calls nobody');
    assert.deepEqual(r.json.healthy_endpoints.map((e) => e.model_id), ['bg-good']);
    assert.deepEqual(r.json.unhealthy_endpoints.map((e) => e.model_id), ['bg-bad']);
    assert.match(r.json.unhealthy_endpoints[0].error, /HTTP 503/);
    const probe = JSON.parse((await bad.last()).body);
    assert.equal(probe.max_tokens, 1);
  });
});
