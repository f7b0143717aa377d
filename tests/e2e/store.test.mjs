// The store as the gateway uses it: general_settings.database_url opens (and
// migrates) the database at start, --check leaves it alone, a bad URL is a
// start error with the password redacted, and a SIGHUP that changes the URL
// keeps the open database with a warning. On PostgreSQL (a server started by
// the test): migrations, two gateways starting together, and an outage that
// /health/readiness reports and the gateway recovers from by itself.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  startLlmux, runLlmux, cleanupTempDirs, request, chatBody, waitFor, MASTER_KEY,
} from './lib/harness.mjs';
import { startPostgres } from './lib/postgres.mjs';

after(async () => {
  await cleanupTempDirs();
});

const sql = (file, query) => execFileSync('sqlite3', [file, query], { encoding: 'utf8' }).trim();

const config = (databaseUrl) => ({
  model_list: [{ model_name: 'local', litellm_params: { model: 'openai/local', mock_response: 'hi' } }],
  general_settings: { master_key: MASTER_KEY, database_url: databaseUrl },
});

test('sqlite:///llmux.db is created in the working directory and migrated; a restart reuses it', async () => {
  const proxy = await startLlmux(config('sqlite:///llmux.db'), { workers: 2 });
  const db = path.join(proxy.dir, 'llmux.db');
  try {
    assert.ok(existsSync(db), 'llmux.db exists in the working directory');
    assert.equal(sql(db, 'SELECT group_concat(version) FROM (SELECT version FROM lx_schema_migrations ORDER BY version)'), '1,2');
    assert.equal(sql(db, 'PRAGMA journal_mode'), 'wal');
    for (const t of ['lx_keys', 'lx_users', 'lx_teams', 'lx_team_members', 'lx_models', 'lx_audit_log', 'lx_spend_logs']) {
      assert.equal(sql(db, `SELECT COUNT(*) FROM ${t}`), '0', t);
    }
    assert.match(proxy.logs(), /applied migration 1/);
    assert.match(proxy.logs(), /applied migration 2/);
    assert.equal(sql(db, "SELECT spend_nanos FROM lx_spend_totals WHERE scope = 'global'"), '0');
    assert.match(proxy.logs(), /store: sqlite:\/\/\/llmux\.db \(sqlite\), schema version 2, opened in [\d.]+ ms/);
    const r = await request(proxy.baseURL, '/chat/completions', { body: chatBody('local') });
    assert.equal(r.status, 200, r.text);
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
  // Same file again, by absolute path: already up to date.
  const again = await startLlmux(config(`sqlite:///${db}`), { workers: 1 });
  try {
    assert.doesNotMatch(again.logs(), /applied migration/);
    assert.match(again.logs(), /schema version 2/);
  } finally {
    assert.equal(await again.stop(), 0);
  }
  assert.equal(sql(db, 'SELECT COUNT(*) FROM lx_schema_migrations'), '2');
});

test('--check does not create the database', async () => {
  const r = await runLlmux(['--config', '$CONFIG', '--check'], { config: config('sqlite:///llmux.db') });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!existsSync(path.join(r.dir, 'llmux.db')), 'no llmux.db after --check');
});

test('a database that cannot be opened stops the start with a clear message and no password', async () => {
  const bad = await runLlmux(['--config', '$CONFIG', '--port', '0', '--host', '127.0.0.1'],
    { config: config('sqlite:////nonexistent-llmux-dir/sub/x.db') });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /llmux: cannot open the database sqlite:\/\/\/\/nonexistent-llmux-dir\/sub\/x\.db: .+/);
  assert.doesNotMatch(bad.stdout, /listening/);

  const pg = await runLlmux(['--config', '$CONFIG', '--port', '0', '--host', '127.0.0.1'],
    { config: config('postgresql://llm:hunter2-secret@127.0.0.1:1/litellm') });
  assert.equal(pg.code, 1);
  assert.match(pg.stderr, /cannot open the database postgresql:\/\/llm:\*\*\*@127\.0\.0\.1:1\/litellm/);
  assert.doesNotMatch(pg.stderr + pg.stdout, /hunter2/);

  const scheme = await runLlmux(['--config', '$CONFIG', '--port', '0'], { config: config('mysql://u:p@h/db') });
  assert.equal(scheme.code, 1);
  assert.match(scheme.stderr, /database_url: unsupported scheme/);
});

test('SIGHUP with another database_url warns that a restart is needed and keeps the open store', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'llmux-store-'));
  try {
    const first = path.join(dir, 'first.db');
    const proxy = await startLlmux(config(`sqlite:///${first}`), { workers: 1 });
    try {
      const before = proxy.logs().length;
      await proxy.writeConfig(config(`sqlite:///${path.join(dir, 'second.db')}`));
      proxy.proc.kill('SIGHUP');
      const line = await waitFor(() => proxy.logs().slice(before).split('\n').find((l) => /database_url changed/.test(l)),
        { timeoutMs: 3000, what: 'the restart warning' });
      assert.match(line, /WARN/);
      assert.match(line, /first\.db/);
      assert.ok(!existsSync(path.join(dir, 'second.db')), 'the new database is not opened');
      const r = await request(proxy.baseURL, '/chat/completions', { body: chatBody('local') });
      assert.equal(r.status, 200, r.text);
    } finally {
      assert.equal(await proxy.stop(), 0);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PostgreSQL: migrated at start, password never logged, two gateways starting together both come up', async (t) => {
  const pg = await startPostgres();
  t.after(() => pg.destroy());
  const url = await pg.createDatabase('llmux_two');
  const [a, b] = await Promise.all([startLlmux(config(url), { workers: 1 }), startLlmux(config(url), { workers: 1 })]);
  try {
    assert.equal(await pg.psql('SELECT COUNT(*) FROM lx_schema_migrations', 'llmux_two'), '2');
    assert.equal(await pg.psql("SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE 'lx\\_%'", 'llmux_two'), '9');
    for (const v of [1, 2]) {
      const applied = [a, b].filter((p) => new RegExp(`applied migration ${v} `).test(p.logs())).length;
      assert.equal(applied, 1, `exactly one of the two applied v${v}`);
    }
    for (const p of [a, b]) {
      assert.match(p.logs(), /store: postgresql:\/\/llmux:\*\*\*@127\.0\.0\.1:\d+\/llmux_two \(postgresql\), schema version 2/);
      assert.ok(!p.logs().includes(pg.password), 'the password is not in the logs');
      const r = await request(p.baseURL, '/health/readiness', { method: 'GET' });
      assert.equal(r.json.db, 'connected');
    }
  } finally {
    assert.equal(await a.stop(), 0);
    assert.equal(await b.stop(), 0);
  }
});

test('PostgreSQL outage: readiness says disconnected, requests keep being served, recovery by itself', async (t) => {
  const pg = await startPostgres();
  t.after(() => pg.destroy());
  const proxy = await startLlmux(config(pg.url), { workers: 2 });
  try {
    const ready = async () => (await request(proxy.baseURL, '/health/readiness', { method: 'GET' }));
    assert.equal((await ready()).json.db, 'connected');
    await pg.kill();
    // The store notices at its next statement: an admin call needs one.
    const down = await request(proxy.baseURL, '/key/generate', { body: {} });
    assert.equal(down.status, 503, down.text);
    assert.ok(!down.text.includes(pg.password));
    const r = await ready();
    assert.equal(r.status, 200);
    assert.equal(r.json.db, 'disconnected');
    const chat = await request(proxy.baseURL, '/chat/completions', { body: chatBody('local') });
    assert.equal(chat.status, 200, chat.text);
    await pg.start();
    await waitFor(async () => (await ready()).json.db === 'connected', { timeoutMs: 5000, what: 'the store to reconnect' });
    const up = await request(proxy.baseURL, '/key/generate', { body: {} });
    assert.equal(up.status, 200, up.text);
    assert.match(proxy.logs(), /store: postgresql:\/\/llmux:\*\*\*@[^ ]+ is unreachable/);
    assert.match(proxy.logs(), /store: reconnected to postgresql:\/\/llmux:\*\*\*@/);
    assert.ok(!proxy.logs().includes(pg.password));
  } finally {
    await proxy.stop('SIGKILL');
  }
});
