// Rate limits end to end: global_max_rpm / global_max_tpm and deployment
// rpm on one instance, two instances sharing a real redis-server, and Redis
// dying mid-test. Windows are the real 60-s windows: a test that must stay
// inside one window first waits, if needed, until enough of the current
// window is left (llmux and the test read the same clock).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {
  startMock, startLlmux, mockDeployment, cleanupTempDirs, collectStream, openStream, request,
  chatBody, sleep, waitFor, MASTER_KEY,
} from './lib/harness.mjs';
import { startRedis } from './lib/redis.mjs';

const WINDOW_S = 60;
let mock;
let redis;

before(async () => {
  mock = await startMock();
  redis = await startRedis();
});

after(async () => {
  await mock?.stop();
  await redis?.stop();
  await cleanupTempDirs();
});

const windowId = () => Math.floor(Date.now() / 1000 / WINDOW_S);
const secondsLeft = () => WINDOW_S - ((Date.now() / 1000) % WINDOW_S);

// Wait until at least `need` seconds of the current window are left; returns its id.
async function freshWindow(need) {
  if (secondsLeft() < need) await sleep(secondsLeft() * 1000 + 200);
  return windowId();
}

const local = (name, content = 'Hello from llmux limits') => ({
  model_name: name,
  litellm_params: { model: `openai/${name}`, mock_response: content },
});

const chat = (baseURL, model, extra) => request(baseURL, '/chat/completions', { body: chatBody(model, extra) });

function assert429(r, pattern) {
  assert.equal(r.status, 429, r.text);
  assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(r.json.error.type, 'rate_limit_error');
  assert.equal(r.json.error.code, '429');
  assert.equal(r.json.error.param, null);
  assert.match(r.json.error.message, pattern);
  const ra = Number(r.headers.get('retry-after'));
  assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= WINDOW_S, `retry-after ${r.headers.get('retry-after')}`);
}

test('global_max_rpm: exactly N answered per window on one instance; 429 shape, retry-after, headers', async () => {
  const proxy = await startLlmux({
    model_list: [local('demo')],
    general_settings: { master_key: MASTER_KEY, global_max_rpm: 5 },
  }, { workers: 2 });
  try {
    const w = await freshWindow(10);
    const rs = await Promise.all(Array.from({ length: 12 }, () => chat(proxy.baseURL, 'demo')));
    assert.equal(windowId(), w, 'stayed within one window');
    const ok = rs.filter((r) => r.status === 200);
    const limited = rs.filter((r) => r.status === 429);
    assert.equal(ok.length, 5, rs.map((r) => r.status).join(','));
    assert.equal(limited.length, 7);
    // Headers on every answer where a limit applies, success included.
    const remaining = ok.map((r) => Number(r.headers.get('x-ratelimit-remaining-requests'))).sort();
    assert.deepEqual(remaining, [0, 1, 2, 3, 4]);
    for (const r of ok) {
      assert.equal(r.headers.get('x-ratelimit-limit-requests'), '5');
      const reset = Number(r.headers.get('x-ratelimit-reset-requests'));
      assert.ok(reset >= 1 && reset <= WINDOW_S, `reset ${reset}`);
      assert.equal(r.headers.get('retry-after'), null);
    }
    for (const r of limited) {
      assert429(r, /^Rate limit exceeded for global: global_max_rpm 5 reached/);
      assert.equal(r.headers.get('x-ratelimit-limit-requests'), '5');
      assert.equal(r.headers.get('x-ratelimit-remaining-requests'), '0');
      assert.equal(r.headers.get('retry-after'), r.headers.get('x-ratelimit-reset-requests'));
    }
    // The official SDK raises its RateLimitError with our message.
    const client = new OpenAI({ apiKey: MASTER_KEY, baseURL: proxy.baseURL, maxRetries: 0 });
    await assert.rejects(
      client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof OpenAI.RateLimitError && e.status === 429 && /global_max_rpm 5/.test(e.message),
    );
    // Streams are refused the same way, before any event.
    const s = await collectStream(proxy.baseURL, '/chat/completions', chatBody('demo', { stream: true }));
    assert.equal(s.status, 429);
    assert.equal(s.json.error.type, 'rate_limit_error');
  } finally {
    await proxy.stop();
  }
});

test('global_max_tpm counts the real usage of answers, streams included', async () => {
  const proxy = await startLlmux({
    model_list: [mockDeployment(mock, { name: 'up' })],
    general_settings: { master_key: MASTER_KEY, global_max_tpm: 1 },
  }, { workers: 1 });
  try {
    await freshWindow(10);
    // A stream that asks for usage: its usage chunk is counted.
    const s = await collectStream(proxy.baseURL, '/chat/completions',
      chatBody('up', { stream: true, stream_options: { include_usage: true } }));
    assert.equal(s.status, 200);
    assert.equal(s.headers.get('x-ratelimit-limit-tokens'), '1');
    assert.equal(s.headers.get('x-ratelimit-remaining-tokens'), '1');
    const usage = s.chunks.find((c) => c && c.usage)?.usage;
    assert.ok(usage && usage.total_tokens > 0, 'the mock reports usage');
    const r = await chat(proxy.baseURL, 'up');
    assert429(r, /^Rate limit exceeded for global: global_max_tpm 1 reached/);
    assert.equal(r.headers.get('x-ratelimit-remaining-tokens'), '0');
  } finally {
    await proxy.stop();
  }
});

test('deployment rpm: a full deployment is skipped while another has room; all full → 429', async () => {
  const proxy = await startLlmux({
    model_list: [
      { ...local('grp', 'from a'), model_info: { id: 'dep-a' }, litellm_params: { model: 'openai/a', mock_response: 'from a', rpm: 2 } },
      { ...local('grp', 'from b'), model_info: { id: 'dep-b' }, litellm_params: { model: 'openai/b', mock_response: 'from b', rpm: 3 } },
    ],
    general_settings: { master_key: MASTER_KEY },
  }, { workers: 2 });
  try {
    const w = await freshWindow(10);
    const ids = [];
    for (let i = 0; i < 5; i++) {
      const r = await chat(proxy.baseURL, 'grp');
      assert.equal(r.status, 200, r.text);
      ids.push(r.headers.get('x-litellm-model-id'));
      const content = r.json.choices[0].message.content;
      assert.equal(content, ids[i] === 'dep-a' ? 'from a' : 'from b');
    }
    assert.equal(ids.filter((x) => x === 'dep-a').length, 2, ids.join(','));
    assert.equal(ids.filter((x) => x === 'dep-b').length, 3, ids.join(','));
    const r = await chat(proxy.baseURL, 'grp');
    assert429(r, /model group 'grp': every deployment is over its rpm\/tpm limit/);
    assert.equal(windowId(), w);
  } finally {
    await proxy.stop();
  }
});

test('two instances sharing Redis serve exactly N in the window, whichever is hit', async () => {
  const N = 10;
  // One reads the tutorial's rate_limit_config, the other LiteLLM's router_settings.
  const a = await startLlmux({
    model_list: [local('shared')],
    rate_limit_config: { redis_host: redis.host, redis_port: redis.port },
    general_settings: { master_key: MASTER_KEY, global_max_rpm: N },
  }, { workers: 2 });
  const b = await startLlmux({
    model_list: [local('shared')],
    router_settings: { redis_host: redis.host, redis_port: redis.port },
    general_settings: { master_key: MASTER_KEY, global_max_rpm: N },
  }, { workers: 2 });
  try {
    // Both connected (the first request of each goes through Redis once the link is up).
    await sleep(300);
    const w = await freshWindow(10);
    const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => chat((i % 2 ? a : b).baseURL, 'shared')));
    assert.equal(windowId(), w, 'stayed within one window');
    const okA = rs.filter((r, i) => i % 2 && r.status === 200).length;
    const okB = rs.filter((r, i) => !(i % 2) && r.status === 200).length;
    assert.equal(okA + okB, N, `a=${okA} b=${okB}`);
    assert.ok(okA > 0 && okB > 0, `both instances served: a=${okA} b=${okB}`);
    for (const r of rs.filter((x) => x.status !== 200)) assert429(r, /global_max_rpm 10 reached/);
    assert.equal(Number(await redis.cmd('GET', `lx:rl:${w}:global:r`)), N);
    const ttl = await redis.cmd('TTL', `lx:rl:${w}:global:r`);
    assert.ok(ttl > 0 && ttl <= 2 * WINDOW_S + 5, `ttl ${ttl}`);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('Redis killed mid-test: requests keep being served; counts resync when it returns', async () => {
  const proxy = await startLlmux({
    model_list: [local('resync')],
    rate_limit_config: { redis_host: redis.host, redis_port: redis.port },
    general_settings: { master_key: MASTER_KEY, global_max_rpm: 100000 },
  }, { workers: 1 });
  try {
    await sleep(300);
    const w = await freshWindow(25);
    const key = `lx:rl:${w}:global:r`;
    const before = Number(await redis.cmd('GET', key)) || 0;
    for (let i = 0; i < 5; i++) assert.equal((await chat(proxy.baseURL, 'resync')).status, 200);
    assert.equal(Number(await redis.cmd('GET', key)), before + 5);

    await redis.kill();
    const t0 = Date.now();
    for (let i = 0; i < 7; i++) {
      const r = await chat(proxy.baseURL, 'resync');
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-ratelimit-limit-requests'), '100000');
    }
    assert.ok(Date.now() - t0 < 2000, `7 requests without Redis took ${Date.now() - t0} ms`);

    await redis.start(); // empty: no persistence
    // The 7 requests counted locally while Redis was away are pushed back.
    await waitFor(async () => Number(await redis.cmd('GET', key)) === 7,
      { timeoutMs: 10_000, intervalMs: 100, what: 'the local counts to be pushed to Redis' });
    const r = await chat(proxy.baseURL, 'resync');
    assert.equal(r.status, 200);
    assert.equal(Number(await redis.cmd('GET', key)), 8);
    assert.equal(windowId(), w, 'stayed within one window');
    assert.match(proxy.logs(), /redis .* unreachable; using local counters/);
    assert.match(proxy.logs(), /pushed local counts of 1 scope/);
  } finally {
    await proxy.stop();
  }
});

test('Redis hung (SIGSTOP): requests are decided locally after one 50-ms deadline; shared again once it answers', async () => {
  const proxy = await startLlmux({
    model_list: [local('hung')],
    rate_limit_config: { redis_host: redis.host, redis_port: redis.port },
    general_settings: { master_key: MASTER_KEY, global_max_rpm: 100000 },
  }, { workers: 1 });
  try {
    await sleep(300);
    const w = await freshWindow(20);
    const key = `lx:rl:${w}:global:r`;
    const base = Number(await redis.cmd('GET', key)) || 0;
    assert.equal((await chat(proxy.baseURL, 'hung')).status, 200);
    assert.equal(Number(await redis.cmd('GET', key)), base + 1);
    redis.pause();
    let slowest = 0;
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) {
      const t = Date.now();
      const r = await chat(proxy.baseURL, 'hung');
      assert.equal(r.status, 200, r.text);
      slowest = Math.max(slowest, Date.now() - t);
    }
    assert.ok(slowest < 400, `slowest request while Redis hung: ${slowest} ms`);
    assert.ok(Date.now() - t0 < 1500, `10 requests took ${Date.now() - t0} ms`);
    redis.resume();
    // The 10 local counts are pushed once the link is back; later requests go through Redis.
    // The script that timed out was still queued in the hung server and runs when it resumes:
    // it may count once more (a command past its deadline cannot be known not to have run).
    let after = 0;
    await waitFor(async () => {
      after = Number(await redis.cmd('GET', key));
      return after === base + 11 || after === base + 12;
    }, { timeoutMs: 10_000, intervalMs: 100, what: 'the local counts to reach Redis' });
    await sleep(200);
    after = Number(await redis.cmd('GET', key));
    assert.ok(after === base + 11 || after === base + 12, `redis count ${after - base}`);
    assert.equal((await chat(proxy.baseURL, 'hung')).status, 200);
    assert.equal(Number(await redis.cmd('GET', key)), after + 1);
    assert.equal(windowId(), w);
  } finally {
    redis.resume();
    await proxy.stop();
  }
});

test('router_settings redis_password: the link authenticates; the password never reaches the logs', async () => {
  const password = 'redis-secret-5e1f0c7a';
  const secured = await startRedis({ password });
  const cfg = (pw) => ({
    model_list: [local('auth')],
    router_settings: { redis_host: secured.host, redis_port: secured.port, redis_password: pw },
    general_settings: { master_key: MASTER_KEY, global_max_rpm: 100000 },
  });
  const good = await startLlmux(cfg(password), { workers: 1 });
  const bad = await startLlmux(cfg('wrong-password-xyz'), { workers: 1 });
  try {
    await sleep(300);
    const w = await freshWindow(10);
    for (let i = 0; i < 3; i++) assert.equal((await chat(good.baseURL, 'auth')).status, 200);
    assert.equal(Number(await secured.cmd('GET', `lx:rl:${w}:global:r`)), 3);
    // A refused password: served on local counts, no client error.
    for (let i = 0; i < 3; i++) assert.equal((await chat(bad.baseURL, 'auth')).status, 200);
    assert.equal(Number(await secured.cmd('GET', `lx:rl:${w}:global:r`)), 3);
    assert.match(bad.logs(), /refused the connection handshake/);
    assert.ok(!good.logs().includes(password) && !bad.logs().includes('wrong-password-xyz'));
  } finally {
    await good.stop();
    await bad.stop();
    await secured.stop();
  }
});

test('SIGHUP to another Redis: counting moves to the new server', async () => {
  const other = await startRedis();
  const cfg = (r) => ({
    model_list: [local('reload')],
    rate_limit_config: { redis_host: r.host, redis_port: r.port },
    general_settings: { master_key: MASTER_KEY, global_max_rpm: 100000 },
  });
  const proxy = await startLlmux(cfg(redis), { workers: 2 });
  try {
    await sleep(300);
    const w = await freshWindow(15);
    const key = `lx:rl:${w}:global:r`;
    const base = Number(await redis.cmd('GET', key)) || 0;
    for (let i = 0; i < 3; i++) assert.equal((await chat(proxy.baseURL, 'reload')).status, 200);
    assert.equal(Number(await redis.cmd('GET', key)), base + 3);
    await proxy.writeConfig(cfg(other));
    proxy.proc.kill('SIGHUP');
    await waitFor(() => /config reloaded/.test(proxy.logs()), { what: 'the reload' });
    await sleep(300);
    for (let i = 0; i < 4; i++) assert.equal((await chat(proxy.baseURL, 'reload')).status, 200);
    assert.equal(Number(await redis.cmd('GET', key)), base + 3);
    // The new server has the 4 new requests (all through it once connected, or pushed on connect).
    await waitFor(async () => Number(await other.cmd('GET', key)) >= 4, { timeoutMs: 5000, what: 'counts on the new Redis' });
    assert.equal(windowId(), w);
  } finally {
    await proxy.stop();
    await other.stop();
  }
});

test("the tutorial's Rate Limiting block loads and applies global_max_rpm", async () => {
  const yaml = `
model_list:
  - model_name: gpt-4
    litellm_params:
      model: gpt-4
      api_key: sk-test
      api_base: ${mock.url}/v1
  - model_name: claude-3
    litellm_params:
      model: openai/claude-3
      api_base: ${mock.url}/v1
      api_key: sk-test

# config.yaml
rate_limit_config:
  redis_host: localhost
  redis_port: ${redis.port}

user_config:
  - user_id: "premium_user"
    user_email: "premium@example.com"
    user_role: "app_user"
    models: ["gpt-4", "claude-3"]
    rpm_limit: 100  # Requests per minute
    tpm_limit: 100000  # Tokens per minute
    max_budget: 500.0

  - user_id: "basic_user"
    user_email: "basic@example.com"
    user_role: "app_user"
    models: ["gpt-3.5-turbo"]
    rpm_limit: 20
    tpm_limit: 10000
    max_budget: 10.0

# Global rate limits
general_settings:
  master_key: ${MASTER_KEY}
  global_max_rpm: 1000
  global_max_tpm: 1000000
`;
  const proxy = await startLlmux(yaml, { workers: 1 });
  try {
    await sleep(200);
    const client = new OpenAI({ apiKey: MASTER_KEY, baseURL: proxy.baseURL, maxRetries: 0 });
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4', messages: [{ role: 'user', content: 'Hello!' }] })
      .withResponse();
    assert.ok(data.choices[0].message.content.length > 0);
    assert.equal(response.headers.get('x-ratelimit-limit-requests'), '1000');
    assert.equal(response.headers.get('x-ratelimit-limit-tokens'), '1000000');
    const rem = Number(response.headers.get('x-ratelimit-remaining-requests'));
    assert.ok(rem >= 0 && rem < 1000);
  } finally {
    await proxy.stop();
  }
});

test('virtual keys: key, user (user_config), per-model and parallel limits; slots released on abort', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'llmux-limits-'));
  const proxy = await startLlmux({
    model_list: [local('demo'), local('other'), mockDeployment(mock, { name: 'slow', directives: { chunks: 40, interval_ms: 50 } })],
    user_config: [{ user_id: 'basic_user', user_role: 'app_user', rpm_limit: 2, tpm_limit: 10000 }],
    general_settings: { master_key: MASTER_KEY, database_url: `sqlite:///${path.join(dir, 'limits.db')}` },
  }, { workers: 2 });
  const gen = async (body) => {
    const r = await request(proxy.baseURL, '/key/generate', { body });
    assert.equal(r.status, 200, r.text);
    return r.json.key;
  };
  const as = (key, model, extra) => request(proxy.baseURL, '/chat/completions', { key, body: chatBody(model, extra) });
  try {
    await freshWindow(15);
    // The tutorial's user_config rpm_limit, across the user's keys.
    const u1 = await gen({ user_id: 'basic_user' });
    const u2 = await gen({ user_id: 'basic_user' });
    assert.equal((await as(u1, 'demo')).status, 200);
    const second = await as(u2, 'demo');
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('x-ratelimit-limit-requests'), '2');
    assert.equal(second.headers.get('x-ratelimit-remaining-requests'), '0');
    assert.equal(second.headers.get('x-ratelimit-limit-tokens'), '10000');
    assert429(await as(u1, 'demo'), /^Rate limit exceeded for user 'basic_user': rpm_limit 2 reached/);

    // A key's own rpm_limit; the message never shows the key.
    const k = await gen({ rpm_limit: 1 });
    assert.equal((await as(k, 'demo')).status, 200);
    const r = await as(k, 'demo');
    assert429(r, /^Rate limit exceeded for key: rpm_limit 1 reached/);
    assert.ok(!r.text.includes(k) && !r.text.includes(k.slice(3)), 'no key in the error');

    // model_rpm_limit: per model of the key.
    const km = await gen({ model_rpm_limit: { demo: 1 } });
    assert.equal((await as(km, 'demo')).status, 200);
    assert429(await as(km, 'demo'), /^Rate limit exceeded for model 'demo' of key: model_rpm_limit 1 reached/);
    assert.equal((await as(km, 'other')).status, 200);

    // max_parallel_requests: in-flight calls; a client that leaves frees its slot.
    const kp = await gen({ max_parallel_requests: 1 });
    const ac = new AbortController();
    const s = await openStream(proxy.baseURL, '/chat/completions', chatBody('slow', { stream: true }), { key: kp, signal: ac.signal });
    assert.equal(s.status, 200);
    assert.ok(await s.next(), 'first event');
    const busy = await as(kp, 'demo');
    assert429(busy, /^Rate limit exceeded for key: max_parallel_requests 1 reached/);
    ac.abort();
    await s.rest().catch(() => {});
    await waitFor(async () => (await as(kp, 'demo')).status === 200, { timeoutMs: 3000, what: 'the aborted stream to free its slot' });
    // Finished calls free theirs too, whatever their outcome.
    for (let i = 0; i < 5; i++) assert.equal((await as(kp, 'demo')).status, 200);
    assert.equal((await as(kp, 'no-such-model')).status, 400);
    assert.equal((await as(kp, 'demo')).status, 200);
  } finally {
    await proxy.stop();
  }
});
