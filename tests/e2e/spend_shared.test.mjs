// Budgets exact across instances: two llmux instances sharing a real
// redis-server and a real PostgreSQL (both started here), spend shared through
// Redis counters (src/spend/shared.h). A call is refused when, at its start,
// the spend seen by either instance has reached max_budget: sequential calls
// alternating between the instances pass exactly as on one instance, and
// concurrent ones overshoot by at most the calls in flight.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

import {
  startLlmux, startMock, cleanupTempDirs, request, chatBody, waitFor, sleep, mockDeployment,
  MASTER_KEY, LLMUX_BIN,
} from './lib/harness.mjs';
import { startRedis } from './lib/redis.mjs';
import { costTrackingConfig, tutorialEnv } from './lib/tutorial.mjs';

let startPostgres = null;
try {
  ({ startPostgres } = await import('./lib/postgres.mjs'));
} catch { /* no PostgreSQL here */ }

const work = mkdtempSync(path.join(os.tmpdir(), 'llmux-spendshare-'));
let mock;
let redis;
let pg;

before(async () => {
  mock = await startMock();
  redis = await startRedis();
  if (startPostgres) pg = await startPostgres();
});

after(async () => {
  await mock?.stop();
  await redis?.stop();
  await pg?.destroy();
  await cleanupTempDirs();
  if (!process.env.LLMUX_E2E_KEEP_TMP) rmSync(work, { recursive: true, force: true });
});

const PRICED = { input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 };
const NANO = 1e9;

function config(db, journal, extra = {}) {
  return {
    model_list: [
      mockDeployment(mock, { name: 'gpt-4o', params: PRICED }),
      mockDeployment(mock, { name: 'slow', params: PRICED, directives: { latency_ms: 150 } }),
    ],
    general_settings: { master_key: MASTER_KEY, database_url: db, spend_journal_dir: journal },
    rate_limit_config: { redis_host: redis.host, redis_port: redis.port },
    ...extra,
  };
}

const chat = (baseURL, key, model = 'gpt-4o') => request(baseURL, '/chat/completions', { body: chatBody(model), key });
const costOf = (r) => Number(r.headers.get('x-litellm-response-cost'));
const tokenOf = (key) => createHash('sha256').update(key).digest('hex');

async function generateKey(baseURL, body) {
  const r = await request(baseURL, '/key/generate', { body });
  assert.equal(r.status, 200, r.text);
  return r.json.key;
}

// Two instances on one database and one Redis; each test gets a fresh database.
async function pair(name, extra = {}) {
  const db = await pg.createDatabase(name);
  const dir = mkdtempSync(path.join(work, `${name}-`));
  const a = await startLlmux(config(db, path.join(dir, 'ja'), extra), { workers: 2 });
  const b = await startLlmux(config(db, path.join(dir, 'jb'), extra), { workers: 2 });
  await sleep(200); // every worker's Redis link connects
  // The first call prices one call.
  const first = await chat(a.baseURL, MASTER_KEY);
  assert.equal(first.status, 200, first.text);
  const q = (sql) => pg.psql(sql, name);
  // Every answered call is committed (rows exist and are applied) once this resolves.
  const applied = (rows) => waitFor(async () => (await q('SELECT COUNT(*) FROM lx_spend_logs WHERE applied = 0')) === '0'
    && (rows === undefined || (await q('SELECT COUNT(*) FROM lx_spend_logs')) === String(rows)), { what: 'rows applied' });
  return { a, b, q, applied, cost: costOf(first), stop: async () => { assert.equal(await a.stop(), 0); assert.equal(await b.stop(), 0); } };
}

test('a key budget across two instances: sequential calls alternating between them, exactly 4 of 3.5 calls pass', { skip: !startPostgres }, async () => {
  const p = await pair('seq');
  try {
    const c = p.cost;
    assert.ok(c > 0);
    const key = await generateKey(p.a.baseURL, { max_budget: 3.5 * c });
    const st = [];
    for (let i = 0; i < 8; i++) {
      const r = await chat(i % 2 ? p.b.baseURL : p.a.baseURL, key);
      st.push(r.status);
      if (r.status === 400) {
        assert.equal(r.json.error.type, 'budget_exceeded');
        assert.equal(r.json.error.code, '400');
        assert.match(r.json.error.message, /^Budget has been exceeded! Current cost: [\d.e+-]+, Max budget: [\d.e+-]+$/);
      }
    }
    assert.deepEqual(st, [200, 200, 200, 200, 400, 400, 400, 400]);
    await p.applied(1 + 4);
    // The shared counter holds the four calls, exactly (nano-USD).
    const counter = Number(await redis.cmd('GET', `lx:sp:k:${tokenOf(key)}:0`));
    assert.equal(counter, Math.round(4 * c * NANO));
    const ttl = Number(await redis.cmd('TTL', `lx:sp:k:${tokenOf(key)}:0`));
    assert.ok(ttl > 86400, `a scope without a duration keeps its counter long: ${ttl}`);
    // The store agrees once the ledgers committed.
    assert.equal(await p.q(`SELECT spend_nanos FROM lx_keys WHERE token = '${tokenOf(key)}'`), String(counter));
  } finally {
    await p.stop();
  }
});

test('a key with rate limits and a budget: counters read in the admission script, one round trip per call', { skip: !startPostgres }, async () => {
  const p = await pair('rpm');
  try {
    const c = p.cost;
    const key = await generateKey(p.a.baseURL, { max_budget: 3.5 * c, rpm_limit: 1000 });
    const mgets = async () => {
      const info = await redis.cmd('INFO', 'commandstats');
      const m = /cmdstat_mget:calls=(\d+)/.exec(info);
      return m ? Number(m[1]) : 0;
    };
    const before = await mgets();
    const st = [];
    for (let i = 0; i < 8; i++) {
      const r = await chat(i % 2 ? p.b.baseURL : p.a.baseURL, key);
      st.push(r.status);
      if (r.status === 200) {
        assert.equal(r.headers.get('x-ratelimit-limit-requests'), '1000');
      } else {
        assert.equal(r.json.error.type, 'budget_exceeded', r.text);
        assert.match(r.json.error.message, /^Budget has been exceeded! Current cost: /);
        assert.equal(r.headers.get('retry-after'), null);
      }
    }
    assert.deepEqual(st, [200, 200, 200, 200, 400, 400, 400, 400]);
    // The budget was read by the rate-limit script (whose own MGET Redis counts too): one MGET per
    // call at most; reading it apart would take a second one for each call the script admitted.
    assert.ok((await mgets()) - before <= 8, `${(await mgets()) - before} MGETs`);
    assert.equal(Number(await redis.cmd('GET', `lx:sp:k:${tokenOf(key)}:0`)), Math.round(4 * c * NANO));
    // Refused calls were not counted against the key's rpm.
    const w = Math.floor(Date.now() / 60000);
    const counted = Number(await redis.cmd('GET', `lx:rl:${w}:key:${tokenOf(key)}:r`)) + Number(await redis.cmd('GET', `lx:rl:${w - 1}:key:${tokenOf(key)}:r`));
    assert.equal(counted, 4);
  } finally {
    await p.stop();
  }
});

test('concurrent calls on both instances: the overshoot is at most the calls in flight', { skip: !startPostgres }, async () => {
  const p = await pair('conc');
  try {
    const c = p.cost;
    const key = await generateKey(p.a.baseURL, { max_budget: 3.5 * c });
    const WAVE = 4; // calls in flight together, two per instance
    let passed = 0;
    let waves = 0;
    for (;;) {
      waves++;
      const rs = await Promise.all(Array.from({ length: WAVE }, (_, i) => chat(i % 2 ? p.b.baseURL : p.a.baseURL, key, 'slow')));
      for (const r of rs) assert.ok(r.status === 200 || (r.status === 400 && r.json.error.type === 'budget_exceeded'), r.text);
      const ok = rs.filter((r) => r.status === 200).length;
      passed += ok;
      if (ok < WAVE) break;
      assert.ok(waves < 10);
    }
    // 4 calls reach the budget; calls that started before the 4th ended may pass too.
    assert.ok(passed >= 4 && passed <= 4 + WAVE - 1, `passed ${passed}`);
    // Once it ran out, both instances refuse.
    for (const base of [p.a.baseURL, p.b.baseURL]) assert.equal((await chat(base, key)).status, 400);
    await waitFor(async () => (await p.q(`SELECT COUNT(*) FROM lx_spend_logs WHERE api_key = '${tokenOf(key)}' AND applied = 1`)) === String(passed),
      { what: `${passed} rows` });
  } finally {
    await p.stop();
  }
});

test('a user budget over two keys and two instances; /user/reset_budget on one is seen by the other at once', { skip: !startPostgres }, async () => {
  const p = await pair('usr');
  try {
    const c = p.cost;
    const u = await request(p.a.baseURL, '/user/new', { body: { user_id: 'shared-user', max_budget: 2.5 * c } });
    assert.equal(u.status, 200, u.text);
    const k1 = await generateKey(p.a.baseURL, { user_id: 'shared-user' });
    const k2 = await generateKey(p.b.baseURL, { user_id: 'shared-user' });
    const run = async (n) => {
      const st = [];
      for (let i = 0; i < n; i++) st.push((await chat(i % 2 ? p.b.baseURL : p.a.baseURL, i % 2 ? k2 : k1)).status);
      return st;
    };
    assert.deepEqual(await run(5), [200, 200, 200, 400, 400]);
    await p.applied(1 + 3);
    const reset = await request(p.a.baseURL, '/user/reset_budget', { body: { user_id: 'shared-user' } });
    assert.equal(reset.status, 200, reset.text);
    // B's own view of the user still holds the old spend; the reset mark in Redis tells it the
    // counter is the one to trust.
    const st = [];
    for (let i = 0; i < 5; i++) st.push((await chat(i % 2 ? p.a.baseURL : p.b.baseURL, i % 2 ? k1 : k2)).status);
    assert.deepEqual(st, [200, 200, 200, 400, 400]);
    await p.applied(1 + 6);
    assert.equal(await p.q("SELECT spend_nanos FROM lx_users WHERE user_id = 'shared-user'"),
      String(Math.round(3 * c * NANO)));
    for (const base of [p.a.baseURL, p.b.baseURL]) {
      const s = await request(base, '/user/spend', { method: 'GET', key: k1 });
      assert.equal(s.status, 200, s.text);
      assert.ok(Math.abs(s.json.total_spend - 3 * c) < 1e-9, s.text);
    }
  } finally {
    await p.stop();
  }
});

test('Redis killed mid-test: calls keep being served, budgets enforced from the store view; counters come back', { skip: !startPostgres }, async () => {
  const p = await pair('down');
  try {
    const c = p.cost;
    const key = await generateKey(p.a.baseURL, { max_budget: 3.5 * c });
    assert.equal((await chat(p.a.baseURL, key)).status, 200);
    assert.equal((await chat(p.b.baseURL, key)).status, 200);
    await redis.kill();
    // No client error for our infrastructure's trouble; a budget is still a budget.
    let passed = 2;
    for (let i = 0; i < 12; i++) {
      const r = await chat(i % 2 ? p.b.baseURL : p.a.baseURL, key);
      assert.ok(r.status === 200 || (r.status === 400 && r.json.error.type === 'budget_exceeded'), r.text);
      if (r.status === 200) passed++;
      await sleep(150); // the other instance's batch commits meanwhile
    }
    // Each instance may miss the other's last call (seen after its own next commit).
    assert.ok(passed >= 4 && passed <= 6, `passed ${passed}`);
    for (const base of [p.a.baseURL, p.b.baseURL]) {
      assert.equal((await chat(base, key)).status, 400);
      assert.equal((await chat(base, MASTER_KEY)).status, 200, 'calls without a budget are served');
    }
    await redis.start(); // empty: no persistence
    // Every worker's link reconnects within its backoff (at most 5 s); a fresh budget is then
    // exact again, its counter created from the store's view.
    await sleep(5500);
    const k2 = await generateKey(p.b.baseURL, { max_budget: 3.5 * c });
    const st = [];
    for (let i = 0; i < 6; i++) st.push((await chat(i % 2 ? p.b.baseURL : p.a.baseURL, k2)).status);
    assert.deepEqual(st, [200, 200, 200, 200, 400, 400]);
    assert.equal(Number(await redis.cmd('GET', `lx:sp:k:${tokenOf(k2)}:0`)), Math.round(4 * c * NANO));
    assert.match(p.a.logs(), /redis .* unreachable/);
  } finally {
    await p.stop();
  }
});

test('a period budget: the counter is named by budget_reset_at and expires just after it', { skip: !startPostgres }, async () => {
  const p = await pair('period');
  try {
    const c = p.cost;
    const key = await generateKey(p.a.baseURL, { max_budget: 1.5 * c, budget_duration: '1h' });
    const at = await p.q(`SELECT budget_reset_at FROM lx_keys WHERE token = '${tokenOf(key)}'`);
    assert.match(at, /^\d+$/);
    const st = [];
    for (let i = 0; i < 4; i++) st.push((await chat(i % 2 ? p.b.baseURL : p.a.baseURL, key)).status);
    assert.deepEqual(st, [200, 200, 400, 400]);
    const named = `lx:sp:k:${tokenOf(key)}:${at}`;
    assert.equal(Number(await redis.cmd('GET', named)), Math.round(2 * c * NANO));
    const ttl = Number(await redis.cmd('TTL', named));
    const left = Number(at) - Math.floor(Date.now() / 1000);
    assert.ok(ttl > left && ttl <= left + 61, `ttl ${ttl}, period ends in ${left}`);
  } finally {
    await p.stop();
  }
});

// The tutorial's Cost Tracking block, as written but for the database (PostgreSQL shared by two
// instances) and the Redis they share.
const COST_TRACKING = (db, journal) => costTrackingConfig({
  databaseUrl: db,
  general: `  spend_journal_dir: "${journal}"\n`,
  tail: `\nrate_limit_config:\n  redis_host: ${redis.host}\n  redis_port: ${redis.port}\n`,
});

test("the tutorial's Cost Tracking block on two instances sharing Redis and PostgreSQL", { skip: !startPostgres }, async () => {
  const db = await pg.createDatabase('tutorial');
  const dir = mkdtempSync(path.join(work, 'tutorial-'));
  const env = tutorialEnv(mock);
  const a = await startLlmux(COST_TRACKING(db, path.join(dir, 'ja')), { env });
  const b = await startLlmux(COST_TRACKING(db, path.join(dir, 'jb')), { env });
  try {
    const { spawnSync } = await import('node:child_process');
    const gen = spawnSync(LLMUX_BIN, ['--config', a.configPath, '--generate_key', '--user_id', 'team_a'], { cwd: a.dir, env: { ...process.env, ...env }, encoding: 'utf8' });
    assert.equal(gen.status, 0, gen.stderr);
    const key = gen.stdout.trim();
    let billed = 0;
    for (const [i, model] of ['gpt-4', 'gpt-3.5-turbo', 'claude-3', 'gpt-4'].entries()) {
      const client = new OpenAI({ apiKey: key, baseURL: i % 2 ? b.baseURL : a.baseURL, maxRetries: 0 });
      const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello!' }] }).withResponse();
      const cost = Number(r.response.headers.get('x-litellm-response-cost'));
      assert.ok(cost > 0, `${model} is billed`);
      billed += cost;
    }
    // The user's spend is shared: its Redis counter holds both instances' calls.
    const names = await redis.cmd('KEYS', 'lx:sp:u:team_a:*');
    assert.ok(names.length >= 1, JSON.stringify(names));
    let counter = 0;
    for (const n of names) counter = Math.max(counter, Number(await redis.cmd('GET', n)));
    assert.ok(Math.abs(counter / NANO - billed) < 1e-9, `${counter} vs ${billed}`);
    await waitFor(async () => (await pg.psql('SELECT COUNT(*) FROM lx_spend_logs WHERE applied = 1', 'tutorial')) === '4', { what: '4 rows' });
    // # Get user spending, on either instance
    for (const base of [a.baseURL, b.baseURL]) {
      const r = await request(base, '/user/spend', { method: 'GET', key });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.user_id, 'team_a');
      assert.equal(r.json.max_budget, 200);
      assert.ok(Math.abs(r.json.total_spend - billed) < 1e-9, `${r.json.total_spend} vs ${billed}`);
    }
    const reset = await request(a.baseURL, '/user/reset_budget', { body: { user_id: 'team_a' } });
    assert.equal(reset.status, 200, reset.text);
    await waitFor(async () => (await request(b.baseURL, '/user/spend', { method: 'GET', key })).json.total_spend === 0,
      { timeoutMs: 40_000, intervalMs: 250, what: 'the reset seen on the other instance' });
  } finally {
    assert.equal(await a.stop(), 0);
    assert.equal(await b.stop(), 0);
  }
});
