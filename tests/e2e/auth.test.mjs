// Authentication and the admin API's dispatch: master key, virtual keys,
// roles and route permissions.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

import {
  startLlmux, startMock, mockDeployment, mockApiBase, request, runLlmux, sleep, waitFor,
  MASTER_KEY, LLMUX_BIN, cleanupTempDirs,
} from './lib/harness.mjs';

after(cleanupTempDirs);

function assertOpenAIError(r, status) {
  assert.equal(r.status, status, r.text);
  assert.equal(typeof r.json?.error?.message, 'string', r.text);
  assert.equal(r.json.error.code, String(status), r.text);
  assert.ok('type' in r.json.error && 'param' in r.json.error, r.text);
}

test('admin routes without a database: master key required, 405 on a wrong method, 500 naming the missing database', async (t) => {
  const mock = await startMock();
  t.after(() => mock.stop());
  const px = await startLlmux({ model_list: [mockDeployment(mock)], general_settings: { master_key: MASTER_KEY } });
  t.after(() => px.stop());

  assertOpenAIError(await request(px.baseURL, '/key/generate', { body: {}, key: null }), 401);
  assertOpenAIError(await request(px.baseURL, '/key/generate', { body: {}, key: 'sk-wrong' }), 401);
  const wrongMethod = await request(px.baseURL, '/key/generate', { method: 'GET' });
  assertOpenAIError(wrongMethod, 405);
  assert.equal(wrongMethod.headers.get('allow'), 'POST');
  const noDb = await request(px.baseURL, '/v1/key/generate', { body: {} });
  assertOpenAIError(noDb, 500);
  assert.match(noDb.json.error.message, /database_url/);
  assertOpenAIError(await request(px.baseURL, '/key/info?key=sk-x', { method: 'GET' }), 500);
  assertOpenAIError(await request(px.baseURL, '/key/nonexistent', { body: {} }), 404);
});

// ---------------------------------------------------------------------------
// The tutorial's Authentication section, word for word: user_config in the
// YAML, `--generate_key --user_id user1` while the gateway runs, and the key
// in the OpenAI SDK, accepted at once.

let startPostgres = null;
try {
  ({ startPostgres } = await import('./lib/postgres.mjs'));
} catch { /* SQLite only */ }

function runCli(args, cwd) {
  return new Promise((resolve) => {
    const p = spawn(LLMUX_BIN, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function tutorialConfig(mock, databaseUrl) {
  // The section's YAML (database_url, user_config) plus the models it names.
  return `
model_list:
${['gpt-3.5-turbo', 'claude-3-haiku-20240307', 'gpt-4'].map((m) => `  - model_name: ${m}
    litellm_params:
      model: openai/${m}
      api_base: ${mockApiBase(mock)}
      api_key: sk-upstream
`).join('')}
# config.yaml with user authentication
general_settings:
  database_url: "${databaseUrl}"

# User API keys
user_config:
  - user_id: "user1"
    user_email: "user1@example.com"
    user_role: "app_user"
    max_budget: 100.0
    models: ["gpt-3.5-turbo", "claude-3-haiku-20240307"]

  - user_id: "user2"
    user_email: "user2@example.com"
    user_role: "app_user"
    max_budget: 50.0
    models: ["gpt-3.5-turbo"]
`;
}

const tutorialBackends = [{ name: 'sqlite', url: async () => 'sqlite:///litellm.db', stop: async () => {} }];
if (startPostgres) {
  tutorialBackends.push({
    name: 'postgres',
    url: async function () { this.pg = await startPostgres(); return this.pg.url; },
    stop: async function () { await this.pg?.destroy(); },
  });
}

for (const b of tutorialBackends) {
  test(`tutorial Authentication on ${b.name}: user_config, --generate_key while running, the key in the OpenAI SDK`, async (t) => {
    const mock = await startMock();
    const url = await b.url();
    const px = await startLlmux(tutorialConfig(mock, url));
    // The gateway stops before its database does.
    t.after(async () => { await px.stop(); await b.stop(); await mock.stop(); });

    // litellm --config config.yaml --generate_key --user_id user1
    const gen = await runCli(['--config', 'config.yaml', '--generate_key', '--user_id', 'user1'], px.dir);
    assert.equal(gen.code, 0, gen.stderr);
    const lines = gen.stdout.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, gen.stdout);
    const key = lines[0];
    assert.match(key, /^sk-[A-Za-z0-9_-]{22}$/);

    // client = openai.OpenAI(api_key="sk-user1-key-12345", base_url="http://localhost:8000")
    const client = new OpenAI({ apiKey: key, baseURL: px.baseURL, maxRetries: 0 });
    const res = await client.chat.completions.create({ model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'Hello!' }] });
    assert.equal(res.object, 'chat.completion');
    // user1 may use only its models.
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-4', messages: [{ role: 'user', content: 'Hello!' }] }),
      (e) => e.status === 401 && /gpt-4/.test(e.message),
    );
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id).sort(), ['claude-3-haiku-20240307', 'gpt-3.5-turbo']);
    // The key belongs to user1, with user1's models.
    const info = await request(px.baseURL, '/key/info', { method: 'GET', key });
    assert.equal(info.status, 200, info.text);
    assert.equal(info.json.info.user_id, 'user1');
    assert.deepEqual(info.json.info.models, ['gpt-3.5-turbo', 'claude-3-haiku-20240307']);

    // An unknown user is a clear error, exit 1, nothing on stdout.
    const bad = await runCli(['--config', 'config.yaml', '--generate_key', '--user_id', 'nobody'], px.dir);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /unknown user 'nobody'/);
    const noUser = await runCli(['--config', 'config.yaml', '--generate_key'], px.dir);
    assert.notEqual(noUser.code, 0);
    assert.match(noUser.stderr, /--user_id/);
  });
}

test('--generate_key without database_url is a clear error', async () => {
  const r = await runLlmux(['--config', '$CONFIG', '--generate_key', '--user_id', 'user1'], {
    config: { model_list: [], user_config: [{ user_id: 'user1' }] },
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /database_url/);
  assert.equal(r.stdout, '');
});

test('user_config: YAML values win over stored ones, spend is kept, at every start', async (t) => {
  const mock = await startMock();
  t.after(() => mock.stop());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'llmux-users-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'u.db');
  const cfg = (models) => ({
    model_list: [mockDeployment(mock, { name: 'gpt-4o' }), mockDeployment(mock, { name: 'gpt-4' })],
    general_settings: { master_key: MASTER_KEY, database_url: `sqlite:///${file}` },
    user_config: [{ user_id: 'u1', user_role: 'internal_user', models, max_budget: 5, rpm_limit: 9 }],
  });
  let px = await startLlmux(cfg(['gpt-4o']));
  const k = (await request(px.baseURL, '/key/generate', { body: { user_id: 'u1' } })).json;
  assert.equal((await request(px.baseURL, '/v1/chat/completions', { key: k.key, body: { model: 'gpt-4', messages: [{ role: 'user', content: 'x' }] } })).status, 401);
  await px.stop();
  execFileSync('sqlite3', [file, "UPDATE lx_users SET spend_nanos = 1234, user_email = 'kept@example.com' WHERE user_id = 'u1'"]);
  px = await startLlmux(cfg(['gpt-4o', 'gpt-4']));
  t.after(() => px.stop());
  const row = JSON.parse(execFileSync('sqlite3', ['-json', file, "SELECT * FROM lx_users WHERE user_id = 'u1'"], { encoding: 'utf8' }))[0];
  assert.equal(row.spend_nanos, 1234);
  assert.equal(row.user_email, 'kept@example.com');
  assert.equal(row.models, '["gpt-4o","gpt-4"]');
  assert.equal(row.max_budget_nanos, 5e9);
  assert.equal(row.rpm_limit, 9);
  assert.equal((await request(px.baseURL, '/v1/chat/completions', { key: k.key, body: { model: 'gpt-4', messages: [{ role: 'user', content: 'x' }] } })).status, 200);
});

// ---------------------------------------------------------------------------
// Store outage (PostgreSQL): cached keys keep working, unknown keys get 503,
// admin calls 503, and everything recovers when the database returns.

test('store outage: cached keys work, unknown keys and admin calls are 503, recovery by itself', { skip: !startPostgres && 'tests/e2e/lib/postgres.mjs not available' }, async (t) => {
  const pg = await startPostgres();
  const mock = await startMock();
  const px = await startLlmux({
    model_list: [mockDeployment(mock, { name: 'gpt-4o' })],
    general_settings: { master_key: MASTER_KEY, database_url: pg.url, user_api_key_cache_ttl: 0.5 },
  });
  t.after(async () => { await px.stop(); await pg.destroy(); await mock.stop(); });
  const gen = async () => (await request(px.baseURL, '/key/generate', { body: {} })).json;
  const chatWith = (key) => request(px.baseURL, '/v1/chat/completions', { key, body: { model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] } });
  const cached = await gen();
  const unseen = await gen();
  assert.equal((await chatWith(cached.key)).status, 200);

  await pg.stop();
  // Past the TTL the cached key still works while the store is down.
  await sleep(800);
  for (let i = 0; i < 3; i++) assert.equal((await chatWith(cached.key)).status, 200);
  const u = await chatWith(unseen.key);
  assert.equal(u.status, 503, u.text);
  assert.ok(!u.text.includes(unseen.key));
  assert.equal((await chatWith('sk-never-issued-1111')).status, 503);
  assert.equal((await request(px.baseURL, '/key/generate', { body: {} })).status, 503);
  // The master key needs no store.
  assert.equal((await chatWith(MASTER_KEY)).status, 200);

  await pg.start();
  await waitFor(async () => (await chatWith(unseen.key)).status === 200, { timeoutMs: 15000, what: 'recovery' });
  assert.equal((await chatWith('sk-never-issued-1111')).status, 401);
  assert.equal((await request(px.baseURL, '/key/generate', { body: {} })).status, 200);
});
