// The spend ledger end to end: every answered call becomes one lx_spend_logs
// row (streams included), a SIGTERM flushes the journal, and a kill -9 under
// load loses nothing that was answered: after a restart the rows equal the
// 200 responses the load generator received.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  startLlmux, startMock, cleanupTempDirs, request, chatBody, collectStream, waitFor, sleep,
  mockDeployment, MASTER_KEY,
} from './lib/harness.mjs';

const work = mkdtempSync(path.join(os.tmpdir(), 'llmux-spend-'));
let mock;

before(async () => {
  mock = await startMock();
});

after(async () => {
  await mock?.stop();
  await cleanupTempDirs();
  if (!process.env.LLMUX_E2E_KEEP_TMP) rmSync(work, { recursive: true, force: true });
});

const sql = (file, query) => execFileSync('sqlite3', [file, query], { encoding: 'utf8' }).trim();

function config(db, extra = {}) {
  return {
    model_list: [
      mockDeployment(mock, { name: 'gpt-4o' }),
      mockDeployment(mock, { name: 'slow', directives: { latency_ms: 30, interval_ms: 5 } }),
      mockDeployment(mock, { name: 'broken', directives: { status: 500 } }),
      { model_name: 'local', litellm_params: { model: 'openai/local', mock_response: 'hi there' } },
    ],
    general_settings: { master_key: MASTER_KEY, database_url: `sqlite:///${db}`, ...extra },
  };
}

test('every answered call is one spend_logs row, streams and failures included', async () => {
  const dir = mkdtempSync(path.join(work, 'basic-'));
  const db = path.join(dir, 'llmux.db');
  const proxy = await startLlmux(config(db), { workers: 2 });
  const ids = [];
  try {
    for (let i = 0; i < 5; i++) {
      const r = await request(proxy.baseURL, '/chat/completions', { body: chatBody('gpt-4o') });
      assert.equal(r.status, 200, r.text);
      ids.push(r.headers.get('x-litellm-call-id'));
    }
    const s = await collectStream(proxy.baseURL, '/chat/completions', chatBody('gpt-4o', { stream: true }));
    assert.equal(s.status, 200);
    ids.push(s.headers.get('x-litellm-call-id'));
    const m = await request(proxy.baseURL, '/chat/completions', { body: chatBody('local', { user: 'end-user-7' }) });
    assert.equal(m.status, 200);
    ids.push(m.headers.get('x-litellm-call-id'));
    const bad = await request(proxy.baseURL, '/chat/completions', { body: chatBody('broken') });
    assert.equal(bad.status, 500);
    const badId = bad.headers.get('x-litellm-call-id');
    // Not billable: no deployment was reached.
    const unknown = await request(proxy.baseURL, '/chat/completions', { body: chatBody('nope') });
    assert.equal(unknown.status, 400);

    // The ledger commits within ~100 ms while running.
    await waitFor(() => sql(db, 'SELECT COUNT(*) FROM lx_spend_logs') === '8', { what: '8 rows' });
    assert.equal(sql(db, "SELECT COUNT(*) FROM lx_spend_logs WHERE status = 'success'"), '7');
    const row = sql(db, `SELECT call_type, model, model_group, custom_llm_provider, api_base, status, applied FROM lx_spend_logs WHERE request_id = '${ids[0]}'`);
    assert.equal(row, `acompletion|gpt-4o-mini|gpt-4o|openai|${mock.apiBase()}|success|1`);
    assert.equal(sql(db, `SELECT status, spend_nanos FROM lx_spend_logs WHERE request_id = '${badId}'`), 'failure|0');
    assert.equal(sql(db, `SELECT model_group, end_user FROM lx_spend_logs WHERE request_id = '${ids[6]}'`), 'local|end-user-7');
    const t = sql(db, `SELECT start_time_ms <= end_time_ms AND end_time_ms > ${Date.now() - 60_000} FROM lx_spend_logs WHERE request_id = '${ids[5]}'`);
    assert.equal(t, '1');
    assert.ok(sql(db, `SELECT model_id FROM lx_spend_logs WHERE request_id = '${ids[5]}'`).length > 0);
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
  // A clean stop leaves no journal behind.
  const journal = `${db}.journal`;
  assert.ok(existsSync(journal), 'the journal directory is <db>.journal');
  assert.deepEqual(readdirSync(journal).filter((f) => f.endsWith('.lxj')), []);
});

test('calls that reuse a client x-request-id are each billed: the row key is the call id', async () => {
  const dir = mkdtempSync(path.join(work, 'rid-'));
  const db = path.join(dir, 'llmux.db');
  const proxy = await startLlmux(config(db), { workers: 2 });
  try {
    const ids = new Set();
    for (let i = 0; i < 3; i++) {
      const r = await request(proxy.baseURL, '/chat/completions', {
        body: chatBody('gpt-4o'), headers: { 'x-request-id': 'client-reused-id' },
      });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-request-id'), 'client-reused-id');
      ids.add(r.headers.get('x-litellm-call-id'));
    }
    assert.equal(ids.size, 3);
    await waitFor(() => sql(db, 'SELECT COUNT(*) FROM lx_spend_logs') === '3', { what: '3 rows' });
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
});

test('spend_journal_dir puts the journal where configured', async () => {
  const dir = mkdtempSync(path.join(work, 'dir-'));
  const db = path.join(dir, 'llmux.db');
  const jdir = path.join(dir, 'journal', 'here');
  const proxy = await startLlmux(config(db, { spend_journal_dir: jdir }), { workers: 1 });
  try {
    const r = await request(proxy.baseURL, '/chat/completions', { body: chatBody('local') });
    assert.equal(r.status, 200);
    assert.ok(readdirSync(jdir).some((f) => f.endsWith('.lxj')), 'a live segment in spend_journal_dir');
    await waitFor(() => sql(db, 'SELECT COUNT(*) FROM lx_spend_logs') === '1', { what: '1 row' });
    // The journal directory is fixed at start: a reload that moves it says so and keeps it.
    await proxy.writeConfig(config(db, { spend_journal_dir: path.join(dir, 'elsewhere') }));
    proxy.proc.kill('SIGHUP');
    await waitFor(() => /spend_journal_dir changed: restart llmux to use it/.test(proxy.logs()), { what: 'reload warning' });
    const r2 = await request(proxy.baseURL, '/chat/completions', { body: chatBody('local') });
    assert.equal(r2.status, 200);
    await waitFor(() => sql(db, 'SELECT COUNT(*) FROM lx_spend_logs') === '2', { what: '2 rows' });
    assert.ok(!existsSync(path.join(dir, 'elsewhere')));
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
  assert.ok(!existsSync(`${db}.journal`));
});

// One client: loops until stopped, counting complete 200 answers.
async function client(baseURL, i, state) {
  let n = 0;
  while (!state.stop) {
    n++;
    const stream = (i + n) % 3 === 0;
    try {
      if (stream) {
        const res = await fetch(`${baseURL}/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify(chatBody('slow', { stream: true })),
        });
        const text = await res.text(); // throws when the connection breaks mid-body
        if (res.status === 200 && text.includes('data: [DONE]')) state.ok++;
      } else {
        const res = await fetch(`${baseURL}/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify(chatBody('slow')),
        });
        const json = await res.json();
        if (res.status === 200 && json.choices) state.ok++;
      }
    } catch {
      state.errors++;
      if (state.killed) return;
    }
  }
}

test('kill -9 under load: after a restart, rows equal the 200 responses received', async () => {
  const dir = mkdtempSync(path.join(work, 'kill-'));
  const db = path.join(dir, 'llmux.db');
  const proxy = await startLlmux(config(db), { workers: 2 });
  const state = { ok: 0, errors: 0, stop: false, killed: false };
  const clients = [];
  for (let i = 0; i < 24; i++) clients.push(client(proxy.baseURL, i, state));
  await waitFor(() => state.ok >= 300, { timeoutMs: 20_000, what: '300 answers' });
  state.killed = true;
  state.stop = true;
  proxy.proc.kill('SIGKILL');
  await Promise.all(clients);
  const received = state.ok;
  assert.ok(received >= 300);

  // The journal holds what the store had not taken yet; the next start replays it.
  const before = Number(sql(db, "SELECT COUNT(*) FROM lx_spend_logs WHERE status = 'success'"));
  const again = await startLlmux(config(db), { workers: 1 });
  try {
    console.log(`kill -9: ${received} answers received, ${state.errors} client errors, ${before} rows before the restart`);
    assert.equal(sql(db, "SELECT COUNT(*) FROM lx_spend_logs WHERE status = 'success'"), String(received),
      `rows == 200 responses (${state.errors} client errors at the kill)`);
  } finally {
    assert.equal(await again.stop(), 0);
  }
  assert.equal(sql(db, 'SELECT COUNT(*) FROM lx_spend_logs WHERE applied = 0'), '0');
  assert.deepEqual(readdirSync(`${db}.journal`).filter((f) => f.endsWith('.lxj')), []);
});

// ---------------------------------------------------------------------------
// Budgets and the spend endpoints

const PRICED = { input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 };

function budgetConfig(db, extra = {}) {
  return {
    model_list: [mockDeployment(mock, { name: 'gpt-4o', params: PRICED })],
    general_settings: { master_key: MASTER_KEY, database_url: `sqlite:///${db}` },
    user_config: [
      { user_id: 'team_a', user_email: 'team_a@example.com', user_role: 'app_user', max_budget: 200.0, budget_duration: '30d' },
    ],
    ...extra,
  };
}

const chat = (baseURL, key) => request(baseURL, '/chat/completions', { body: chatBody('gpt-4o'), key });
const costOf = (r) => Number(r.headers.get('x-litellm-response-cost'));
const nearly = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

function assertBudgetError(r, spend, max) {
  assert.equal(r.status, 400, r.text);
  assert.equal(r.json.error.type, 'budget_exceeded');
  assert.equal(r.json.error.code, '400');
  const m = r.json.error.message.match(/^Budget has been exceeded! Current cost: ([\d.e-]+), Max budget: ([\d.e-]+)$/);
  assert.ok(m, r.json.error.message);
  assert.ok(nearly(Number(m[1]), spend), `current cost ${m[1]} vs ${spend}`);
  assert.ok(nearly(Number(m[2]), max), `max budget ${m[2]} vs ${max}`);
}

async function generateKey(baseURL, body) {
  const r = await request(baseURL, '/key/generate', { body });
  assert.equal(r.status, 200, r.text);
  return r.json.key;
}

test('key budget: exactly the calls that start under max_budget pass; spend endpoints agree', async () => {
  const dir = mkdtempSync(path.join(work, 'budget-'));
  const db = path.join(dir, 'llmux.db');
  const proxy = await startLlmux(budgetConfig(db), { workers: 2 });
  try {
    const first = await chat(proxy.baseURL, MASTER_KEY);
    assert.equal(first.status, 200, first.text);
    const c = costOf(first);
    assert.ok(c > 0, 'a priced call costs something');

    const key = await generateKey(proxy.baseURL, { user_id: 'u1', max_budget: 3.5 * c });
    let ok = 0;
    let last;
    for (let i = 0; i < 6; i++) {
      last = await chat(proxy.baseURL, key);
      if (last.status !== 200) break;
      ok++;
    }
    assert.equal(ok, 4, 'calls 1-4 start under 3.5 x cost; the 5th does not');
    assertBudgetError(last, 4 * c, 3.5 * c);

    // The caller's own spend, through its own key (the tutorial's call).
    const us = await request(proxy.baseURL, '/user/spend', { method: 'GET', key });
    assert.equal(us.status, 200, us.text);
    assert.equal(us.json.user_id, 'u1');
    assert.ok(nearly(us.json.total_spend, 4 * c), `${us.json.total_spend} vs ${4 * c}`);
    assert.ok('max_budget' in us.json && 'budget_reset_at' in us.json);

    const gs = await request(proxy.baseURL, '/global/spend', { method: 'GET' });
    assert.equal(gs.status, 200, gs.text);
    assert.ok(nearly(gs.json.spend, 5 * c), `${gs.json.spend} vs ${5 * c}`);
    const denied = await request(proxy.baseURL, '/global/spend', { method: 'GET', key });
    assert.ok(denied.status === 401 || denied.status === 403, denied.text);

    // Spend logs: the key's rows (its own view), then an admin's filters.
    await waitFor(() => sql(db, 'SELECT COUNT(*) FROM lx_spend_logs') === '5', { what: '5 rows' });
    const own = await request(proxy.baseURL, '/spend/logs', { method: 'GET', key });
    assert.equal(own.status, 200, own.text);
    assert.equal(own.json.length, 4);
    assert.ok(own.json.every((row) => row.user === 'u1' && nearly(row.spend, c) && row.model_group === 'gpt-4o'));
    const byId = await request(proxy.baseURL, `/spend/logs?request_id=${first.headers.get('x-litellm-call-id')}`, { method: 'GET' });
    assert.equal(byId.json.length, 1);
    assert.equal(byId.json[0].user, null);
    const byUser = await request(proxy.baseURL, '/spend/logs?user_id=u1&start_date=2000-01-01&end_date=2999-12-31', { method: 'GET' });
    assert.equal(byUser.json.length, 4);
    const none = await request(proxy.baseURL, '/spend/logs?start_date=2001-01-01&end_date=2001-01-02', { method: 'GET' });
    assert.deepEqual(none.json, []);
    const badDate = await request(proxy.baseURL, '/spend/logs?start_date=yesterday', { method: 'GET' });
    assert.equal(badDate.status, 400);

    const keys = await request(proxy.baseURL, '/global/spend/keys?limit=1', { method: 'GET' });
    assert.equal(keys.status, 200, keys.text);
    assert.equal(keys.json.length, 1);
    assert.ok(nearly(keys.json[0].total_spend, 4 * c));
    const models = await request(proxy.baseURL, '/global/spend/models', { method: 'GET' });
    assert.equal(models.json[0].model, 'gpt-4o-mini');
    assert.ok(nearly(models.json[0].total_spend, 5 * c));

    // Totals equal the sums of the rows.
    await waitFor(() => sql(db, 'SELECT COUNT(*) FROM lx_spend_logs WHERE applied = 0') === '0', { what: 'applied' });
    assert.equal(sql(db, "SELECT spend_nanos FROM lx_users WHERE user_id = 'u1'"),
      sql(db, "SELECT SUM(spend_nanos) FROM lx_spend_logs WHERE user_id = 'u1'"));
    assert.equal(sql(db, "SELECT SUM(spend_nanos) FROM lx_keys"),
      sql(db, 'SELECT SUM(spend_nanos) FROM lx_spend_logs WHERE api_key IS NOT NULL'));
    // Once committed, nothing is counted twice (store + pending).
    const gs2 = await request(proxy.baseURL, '/global/spend', { method: 'GET' });
    assert.ok(nearly(gs2.json.spend, 5 * c), `${gs2.json.spend} vs ${5 * c}`);
    const us2 = await request(proxy.baseURL, '/user/spend', { method: 'GET', key });
    assert.ok(nearly(us2.json.total_spend, 4 * c), `${us2.json.total_spend} vs ${4 * c}`);
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
});

test('user budget from user_config, /user/reset_budget, and budget_duration resets', async () => {
  const dir = mkdtempSync(path.join(work, 'reset-'));
  const db = path.join(dir, 'llmux.db');
  const probe = await startLlmux(budgetConfig(db), { workers: 1 });
  let c;
  try {
    const r = await chat(probe.baseURL, MASTER_KEY);
    c = costOf(r);
  } finally {
    await probe.stop();
  }
  const cfg = budgetConfig(db);
  cfg.user_config[0].max_budget = 2.5 * c;
  const proxy = await startLlmux(cfg, { workers: 2 });
  try {
    const key = await generateKey(proxy.baseURL, { user_id: 'team_a' });
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await chat(proxy.baseURL, key));
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 400]);
    assertBudgetError(results[3], 3 * c, 2.5 * c);

    let us = await request(proxy.baseURL, '/user/spend', { method: 'GET', key });
    assert.ok(nearly(us.json.total_spend, 3 * c));
    assert.ok(nearly(us.json.max_budget, 2.5 * c));
    assert.match(us.json.budget_reset_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/);

    // Only admins reset; then the user can spend again.
    const refused = await request(proxy.baseURL, '/user/reset_budget', { body: { user_id: 'team_a' }, key });
    assert.ok(refused.status === 401 || refused.status === 403, refused.text);
    const reset = await request(proxy.baseURL, '/user/reset_budget', { body: { user_id: 'team_a' } });
    assert.equal(reset.status, 200, reset.text);
    assert.equal(reset.json.user_id, 'team_a');
    const missing = await request(proxy.baseURL, '/user/reset_budget', { body: { user_id: 'nobody' } });
    assert.equal(missing.status, 404);
    us = await request(proxy.baseURL, '/user/spend', { method: 'GET', key });
    assert.equal(us.json.total_spend, 0);
    assert.equal((await chat(proxy.baseURL, key)).status, 200);

    // A key whose budget period is 2 s: refused once spent, served again after the reset.
    const k2 = await generateKey(proxy.baseURL, { max_budget: 1.5 * c, budget_duration: '2s' });
    assert.equal((await chat(proxy.baseURL, k2)).status, 200);
    assert.equal((await chat(proxy.baseURL, k2)).status, 200);
    assert.equal((await chat(proxy.baseURL, k2)).status, 400);
    await waitFor(async () => (await chat(proxy.baseURL, k2)).status === 200, { timeoutMs: 8000, intervalMs: 250, what: 'budget reset' });
    assert.match(proxy.logs(), /budget reset: key/);
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
});

test('budget overshoot under concurrency is bounded by the calls in flight', async () => {
  const dir = mkdtempSync(path.join(work, 'overshoot-'));
  const db = path.join(dir, 'llmux.db');
  const cfg = budgetConfig(db);
  cfg.model_list = [mockDeployment(mock, { name: 'gpt-4o', params: PRICED, directives: { latency_ms: 20 } })];
  const proxy = await startLlmux(cfg, { workers: 2 });
  try {
    const c = costOf(await chat(proxy.baseURL, MASTER_KEY));
    const allowed = 6; // calls that can start under the budget one at a time
    const key = await generateKey(proxy.baseURL, { max_budget: (allowed - 0.5) * c });
    const concurrency = 4;
    let ok = 0;
    let refused = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (let i = 0; i < 10; i++) {
        const r = await chat(proxy.baseURL, key);
        if (r.status === 200) ok++;
        else if (r.status === 400 && r.json?.error?.type === 'budget_exceeded') refused++;
        else assert.fail(`unexpected ${r.status} ${r.text}`);
      }
    }));
    assert.equal(ok + refused, concurrency * 10);
    assert.ok(ok >= allowed, `at least the ${allowed} calls under budget were served (${ok})`);
    assert.ok(ok <= allowed + concurrency - 1, `overshoot ${ok - allowed} <= calls in flight (${concurrency - 1})`);
    await waitFor(() => sql(db, 'SELECT COUNT(*) FROM lx_spend_logs WHERE applied = 0') === '0'
      && Number(sql(db, "SELECT COUNT(*) FROM lx_spend_logs WHERE status = 'success'")) === ok + 1, { what: 'rows committed' });
    assert.equal(sql(db, 'SELECT SUM(spend_nanos) FROM lx_keys WHERE max_budget_nanos IS NOT NULL'),
      sql(db, 'SELECT SUM(s.spend_nanos) FROM lx_spend_logs s JOIN lx_keys k ON k.token = s.api_key WHERE k.max_budget_nanos IS NOT NULL'));
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
});

test('two instances on one database: a survivor replays the journal of one killed under load', async () => {
  const dir = mkdtempSync(path.join(work, 'two-'));
  const db = path.join(dir, 'llmux.db');
  const a = await startLlmux(config(db), { workers: 2 });
  const b = await startLlmux(config(db), { workers: 1 });
  const sa = { ok: 0, errors: 0, stop: false, killed: false };
  const sb = { ok: 0, errors: 0, stop: false, killed: false };
  const clients = [];
  for (let i = 0; i < 12; i++) clients.push(client(a.baseURL, i, sa));
  const bClients = [];
  for (let i = 0; i < 4; i++) bClients.push(client(b.baseURL, i, sb));
  await waitFor(() => sa.ok >= 200, { timeoutMs: 20_000, what: '200 answers from A' });
  sa.killed = true;
  sa.stop = true;
  a.proc.kill('SIGKILL');
  await Promise.all(clients);
  sb.stop = true;
  await Promise.all(bClients);
  try {
    // B takes over A's segments (no live process holds their locks) within its 10 s scan.
    await waitFor(() => Number(sql(db, "SELECT COUNT(*) FROM lx_spend_logs WHERE status = 'success'")) === sa.ok + sb.ok,
      { timeoutMs: 15_000, intervalMs: 200, what: `rows == ${sa.ok} + ${sb.ok} answers` });
    await waitFor(() => readdirSync(`${db}.journal`).filter((f) => f.endsWith('.lxj')).length <= 1,
      { timeoutMs: 5000, what: "A's segments removed" });
  } finally {
    assert.equal(await b.stop(), 0);
  }
  assert.equal(sql(db, "SELECT COUNT(*) FROM lx_spend_logs WHERE status = 'success'"), String(sa.ok + sb.ok));
});

// ---------------------------------------------------------------------------
// PostgreSQL: the same guarantees, two instances sharing the database, and the
// database going away under load.

let startPostgres = null;
try {
  ({ startPostgres } = await import('./lib/postgres.mjs'));
} catch { /* not available: SQLite only */ }

function pgConfig(url, journal, extra = {}) {
  return {
    model_list: [
      mockDeployment(mock, { name: 'gpt-4o', params: PRICED }),
      mockDeployment(mock, { name: 'slow', params: PRICED, directives: { latency_ms: 30, interval_ms: 5 } }),
    ],
    general_settings: { master_key: MASTER_KEY, database_url: url, spend_journal_dir: journal, ...extra },
  };
}

test('postgres: two instances, the database killed mid-load, then one instance killed -9: rows equal 200 responses; totals equal the rows', { skip: !startPostgres }, async () => {
  const pg = await startPostgres();
  const dir = mkdtempSync(path.join(work, 'pg-'));
  const q = (s) => pg.psql(s);
  try {
    const journal = path.join(dir, 'journal');
    const a = await startLlmux(pgConfig(pg.url, journal), { workers: 2 });
    const b = await startLlmux(pgConfig(pg.url, journal), { workers: 1 });
    // A virtual key spends on both instances; its total must equal its rows.
    const key = await generateKey(a.baseURL, { user_id: 'pg-user' });
    let keyed = 0;
    for (let i = 0; i < 10; i++) {
      const r = await chat(i % 2 ? a.baseURL : b.baseURL, key);
      assert.equal(r.status, 200, r.text);
      keyed++;
    }
    const sa = { ok: 0, errors: 0, stop: false, killed: false };
    const sb = { ok: 0, errors: 0, stop: false, killed: false };
    const ca = Array.from({ length: 8 }, (_, i) => client(a.baseURL, i, sa));
    const cb = Array.from({ length: 4 }, (_, i) => client(b.baseURL, i, sb));
    await waitFor(() => sa.ok + sb.ok >= 100, { timeoutMs: 20_000, what: '100 answers' });
    await pg.kill(); // the store goes away: calls keep being answered, the journal grows
    const atKill = sa.ok + sb.ok;
    await waitFor(() => sa.ok + sb.ok >= atKill + 100, { timeoutMs: 20_000, what: '100 answers with the database down' });
    await pg.start();
    await sleep(300);
    sa.killed = true;
    sa.stop = true;
    a.proc.kill('SIGKILL');
    await Promise.all(ca);
    sb.stop = true;
    await Promise.all(cb);
    assert.equal(sb.errors, 0, 'B served every call, database down or not');
    // B takes over A's segments within its 10 s scan.
    const want = sa.ok + sb.ok + keyed;
    await waitFor(async () => Number(await q("SELECT COUNT(*) FROM lx_spend_logs WHERE status = 'success'")) === want,
      { timeoutMs: 20_000, intervalMs: 250, what: `rows == ${want} answers` });
    assert.match(b.logs(), /spend ledger: the store is unavailable/);
    assert.match(b.logs(), /spend ledger: the store is back/);
    assert.equal(await b.stop(), 0);
    assert.equal(await q('SELECT COUNT(*) FROM lx_spend_logs WHERE applied = 0'), '0');
    assert.equal(await q("SELECT spend_nanos FROM lx_users WHERE user_id = 'pg-user'"),
      await q("SELECT SUM(spend_nanos) FROM lx_spend_logs WHERE user_id = 'pg-user'"));
    assert.equal(await q('SELECT SUM(spend_nanos) FROM lx_keys'),
      await q('SELECT SUM(spend_nanos) FROM lx_spend_logs WHERE api_key IS NOT NULL'));
    assert.deepEqual(readdirSync(journal).filter((f) => f.endsWith('.lxj')), []);
  } finally {
    await pg.destroy();
  }
});

test('postgres: budgets, resets and the spend endpoints', { skip: !startPostgres }, async () => {
  const pg = await startPostgres();
  const dir = mkdtempSync(path.join(work, 'pgb-'));
  try {
    const cfg = pgConfig(pg.url, path.join(dir, 'journal'));
    cfg.user_config = [{ user_id: 'team_a', user_role: 'app_user', max_budget: 1, budget_duration: '30d' }];
    const proxy = await startLlmux(cfg, { workers: 2 });
    try {
      const first = await chat(proxy.baseURL, MASTER_KEY);
      const c = costOf(first);
      const key = await generateKey(proxy.baseURL, { user_id: 'team_a', max_budget: 2.5 * c });
      const st = [];
      for (let i = 0; i < 4; i++) st.push((await chat(proxy.baseURL, key)).status);
      assert.deepEqual(st, [200, 200, 200, 400]);
      const us = await request(proxy.baseURL, '/user/spend', { method: 'GET', key });
      assert.equal(us.status, 200, us.text);
      assert.ok(nearly(us.json.total_spend, 3 * c));
      assert.ok(nearly(us.json.max_budget, 1));
      assert.match(us.json.budget_reset_at, /^\d{4}-/);
      await waitFor(async () => (await pg.psql('SELECT COUNT(*) FROM lx_spend_logs')) === '4', { what: '4 rows' });
      const logs = await request(proxy.baseURL, `/spend/logs?user_id=team_a&start_date=2000-01-01`, { method: 'GET' });
      assert.equal(logs.status, 200, logs.text);
      assert.equal(logs.json.length, 3);
      const one = await request(proxy.baseURL, `/spend/logs?request_id=${first.headers.get('x-litellm-call-id')}`, { method: 'GET' });
      assert.equal(one.json.length, 1);
      const gs = await request(proxy.baseURL, '/global/spend', { method: 'GET' });
      assert.ok(nearly(gs.json.spend, 4 * c), `${gs.json.spend}`);
      const keys = await request(proxy.baseURL, '/global/spend/keys', { method: 'GET' });
      assert.ok(nearly(keys.json[0].total_spend, 3 * c));
      const models = await request(proxy.baseURL, '/global/spend/models', { method: 'GET' });
      assert.ok(nearly(models.json[0].total_spend, 4 * c));
      // The key's own budget: reset through its 2 s period on a fresh key.
      const k2 = await generateKey(proxy.baseURL, { max_budget: 1.5 * c, budget_duration: '2s' });
      assert.deepEqual([(await chat(proxy.baseURL, k2)).status, (await chat(proxy.baseURL, k2)).status,
        (await chat(proxy.baseURL, k2)).status], [200, 200, 400]);
      await waitFor(async () => (await chat(proxy.baseURL, k2)).status === 200, { timeoutMs: 8000, intervalMs: 250, what: 'budget reset' });
      const reset = await request(proxy.baseURL, '/user/reset_budget', { body: { user_id: 'team_a' } });
      assert.equal(reset.status, 200, reset.text);
      const after = await request(proxy.baseURL, '/user/spend', { method: 'GET', key });
      assert.equal(after.json.total_spend, 0);
    } finally {
      assert.equal(await proxy.stop(), 0);
    }
    assert.equal(await pg.psql("SELECT spend_nanos FROM lx_users WHERE user_id = 'team_a'"), '0');
  } finally {
    await pg.destroy();
  }
});

test('team budget: keys of a team share it; team spend equals its rows', async () => {
  const dir = mkdtempSync(path.join(work, 'team-'));
  const db = path.join(dir, 'llmux.db');
  const proxy = await startLlmux(budgetConfig(db), { workers: 2 });
  try {
    const c = costOf(await chat(proxy.baseURL, MASTER_KEY));
    const team = await request(proxy.baseURL, '/team/new', { body: { team_alias: 'spenders', max_budget: 2.5 * c } });
    assert.equal(team.status, 200, team.text);
    const teamId = team.json.team_id;
    const k1 = await generateKey(proxy.baseURL, { team_id: teamId });
    const k2 = await generateKey(proxy.baseURL, { team_id: teamId });
    const st = [];
    for (const k of [k1, k2, k1, k2]) st.push((await chat(proxy.baseURL, k)).status);
    assert.deepEqual(st, [200, 200, 200, 400]);
    await waitFor(() => sql(db, 'SELECT COUNT(*) FROM lx_spend_logs WHERE applied = 0') === '0'
      && sql(db, `SELECT COUNT(*) FROM lx_spend_logs WHERE team_id = '${teamId}'`) === '3', { what: 'team rows applied' });
    assert.equal(sql(db, `SELECT spend_nanos FROM lx_teams WHERE team_id = '${teamId}'`),
      sql(db, `SELECT SUM(spend_nanos) FROM lx_spend_logs WHERE team_id = '${teamId}'`));
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
});
