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
    const m = await request(proxy.baseURL, '/chat/completions', { body: chatBody('local') });
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
    assert.equal(sql(db, `SELECT model_group FROM lx_spend_logs WHERE request_id = '${ids[6]}'`), 'local');
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
