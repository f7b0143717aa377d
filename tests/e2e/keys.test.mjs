// The /key admin API and virtual keys on the request path, on SQLite and
// (when tests/e2e/lib/postgres.mjs is there) on PostgreSQL: every /key route
// with good and bad input, keys used through the official OpenAI SDK, model
// access, expiry, blocking, regeneration with a grace period, listing,
// persistence across a restart, the audit log.

import { test, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { assertError, post, get } from './lib/admin.mjs';
import { databaseBackends } from './lib/databases.mjs';
import {
  startLlmux, startMock, mockDeployment, request, cleanupTempDirs, sleep, MASTER_KEY,
} from './lib/harness.mjs';

after(cleanupTempDirs);

const backends = await databaseBackends();

// The rows of a query as JSON text, to search for values that must (not) be there.
const dbText = (db, sql) => JSON.stringify(db.rows(sql));
const sdk = (px, key) => new OpenAI({ apiKey: key, baseURL: px.baseURL, maxRetries: 0 });
const chat = (px, key, model = 'gpt-4o') => request(px.baseURL, '/v1/chat/completions', {
  key, body: { model, messages: [{ role: 'user', content: 'hi' }] },
});

for (const backend of backends) {
  describe(`virtual keys on ${backend.name}`, () => {
    let db;
    let mock;
    let px;
    let config;

    test('setup', async () => {
      db = await backend.open();
      mock = await startMock();
      config = {
        model_list: [
          mockDeployment(mock, { name: 'gpt-4o' }),
          mockDeployment(mock, { name: 'gpt-3.5-turbo' }),
          mockDeployment(mock, { name: 'claude-3' }),
        ],
        general_settings: { master_key: MASTER_KEY, database_url: db.url },
        user_config: [
          { user_id: 'alice', user_role: 'internal_user', models: ['gpt-4o', 'gpt-3.5-turbo'] },
          { user_id: 'bob', user_role: 'internal_user' },
          { user_id: 'viewer', user_role: 'proxy_admin_viewer' },
          { user_id: 'iview', user_role: 'internal_user_viewer' },
          { user_id: 'app', user_role: 'app_user', models: ['gpt-4o'] },
          { user_id: 'boss', user_role: 'proxy_admin' },
        ],
      };
      px = await startLlmux(config);
    });

    test('/key/generate: a fresh key, shown once, works at once through the OpenAI SDK', async () => {
      const r = await post(px, '/key/generate', {});
      assert.equal(r.status, 200, r.text);
      const k = r.json;
      assert.match(k.key, /^sk-[A-Za-z0-9_-]{22}$/);
      assert.match(k.token, /^[0-9a-f]{64}$/);
      assert.equal(k.key_name, `sk-...${k.key.slice(-4)}`);
      assert.equal(k.expires, null);
      assert.deepEqual(k.models, []);
      assert.equal(k.spend, 0);
      const res = await sdk(px, k.key).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(res.object, 'chat.completion');
      // The key is never stored: neither the raw key nor its masked middle.
      assert.ok(!dbText(db, 'SELECT token, key_name FROM lx_keys').includes(k.key));
    });

    test('/key/generate with every field; /key/info by key and by token', async () => {
      const before = Date.now();
      const r = await post(px, '/key/generate', {
        key_alias: `full-${backend.name}`, duration: '30d', models: ['gpt-4o'], max_budget: 10.5,
        budget_duration: '1d', rpm_limit: 7, tpm_limit: 7000, max_parallel_requests: 3,
        model_rpm_limit: { 'gpt-4o': 5 }, model_tpm_limit: { 'gpt-4o': 500 },
        metadata: { team: 'core' }, user_id: 'alice',
      });
      assert.equal(r.status, 200, r.text);
      const k = r.json;
      const exp = Date.parse(k.expires);
      assert.ok(Math.abs(exp - (before + 30 * 86400e3)) < 60e3, k.expires);
      assert.equal(k.max_budget, 10.5);
      assert.equal(k.rpm_limit, 7);
      assert.equal(k.tpm_limit, 7000);
      assert.equal(k.max_parallel_requests, 3);
      assert.deepEqual(k.model_rpm_limit, { 'gpt-4o': 5 });
      assert.deepEqual(k.metadata, { team: 'core' });
      assert.equal(k.user_id, 'alice');
      assert.equal(k.budget_duration, '1d');
      assert.ok(k.budget_reset_at);

      for (const q of [k.key, k.token]) {
        const info = await get(px, `/key/info?key=${encodeURIComponent(q)}`);
        assert.equal(info.status, 200, info.text);
        assert.equal(info.json.key, q);
        assert.equal(info.json.info.key_alias, `full-${backend.name}`);
        assert.equal(info.json.info.token, k.token);
        assert.deepEqual(info.json.info.models, ['gpt-4o']);
        assert.equal(info.json.info.max_budget, 10.5);
        assert.ok(!JSON.stringify(info.json.info).includes(k.key), 'info never shows the raw key');
      }
      assertError(await get(px, '/key/info'), 400, 'key'); // the master key has no record
      assertError(await get(px, '/key/info?key=sk-never-issued-42'), 404, 'key');
      assertError(await get(px, '/key/info?key=%zz'), 400, 'key');
      // Custom key values are accepted when they start with sk-.
      const custom = await post(px, '/key/generate', { key: `sk-custom-${backend.name}-0001` });
      assert.equal(custom.status, 200, custom.text);
      assert.equal(custom.json.key, `sk-custom-${backend.name}-0001`);
      assert.equal((await chat(px, custom.json.key)).status, 200);
      // The same value twice is refused.
      assertError(await post(px, '/key/generate', { key: `sk-custom-${backend.name}-0001` }), 400, 'key');
    });

    test('/key/generate: bad input is 400 naming the field', async () => {
      const cases = [
        [{ models: 'gpt-4o' }, 'models'],
        [{ models: [1] }, 'models'],
        [{ max_budget: -1 }, 'max_budget'],
        [{ max_budget: '10' }, 'max_budget'],
        [{ duration: 'soon' }, 'duration'],
        [{ budget_duration: 5 }, 'budget_duration'],
        [{ rpm_limit: 1.5 }, 'rpm_limit'],
        [{ tpm_limit: -3 }, 'tpm_limit'],
        [{ metadata: [] }, 'metadata'],
        [{ model_rpm_limit: { 'gpt-4o': 'x' } }, 'model_rpm_limit'],
        [{ key: 'pk-not-a-virtual-key' }, 'key'],
        [{ key_alias: 12 }, 'key_alias'],
        [{ team_id: 'no-such-team' }, 'team_id'],
      ];
      assertError(await post(px, '/key/generate', { key: 'pk-not-a-virtual-key' }), 400, 'key',
        "Invalid value for 'key': a custom key must start with 'sk-' and be at most 255 characters");
      assertError(await post(px, '/key/generate', { models: [1] }), 400, 'models', "Invalid value for 'models': expected a list of strings");
      assertError(await post(px, '/key/generate', { metadata: [] }), 400, 'metadata', "Invalid value for 'metadata': expected an object");
      for (const [body, field] of cases) {
        const r = await post(px, '/key/generate', body);
        assertError(r, 400, field);
        assert.ok(r.json.error.message.includes(field), r.text);
      }
      assertError(await request(px.baseURL, '/key/generate', { body: '{"models": [' }), 400);
      assertError(await request(px.baseURL, '/key/generate', { body: '[1,2]' }), 400);
      // A duplicate alias.
      assert.equal((await post(px, '/key/generate', { key_alias: `dup-${backend.name}` })).status, 200);
      assertError(await post(px, '/key/generate', { key_alias: `dup-${backend.name}` }), 400, 'key_alias');
    });

    test('model access: the key, user and team lists all apply; /v1/models lists what the key may use', async () => {
      const k = (await post(px, '/key/generate', { models: ['gpt-4o', 'claude-3'], user_id: 'alice' })).json;
      assert.equal((await chat(px, k.key, 'gpt-4o')).status, 200);
      const denied = await chat(px, k.key, 'gpt-3.5-turbo');
      assertError(denied, 401, 'model');
      assert.equal(denied.json.error.type, 'key_model_access_denied');
      assert.match(denied.json.error.message, /This key can only access models=\['gpt-4o', 'claude-3'\]. Tried to access gpt-3.5-turbo/);
      // alice's own list excludes claude-3.
      const byUser = await chat(px, k.key, 'claude-3');
      assertError(byUser, 401, 'model');
      assert.match(byUser.json.error.message, /user not allowed to access model/);
      const models = await get(px, '/v1/models', k.key);
      assert.deepEqual(models.json.data.map((m) => m.id), ['gpt-4o']);
      // Through the SDK: the 401 surfaces as an AuthenticationError.
      await assert.rejects(
        sdk(px, k.key).chat.completions.create({ model: 'gpt-3.5-turbo', messages: [{ role: 'user', content: 'x' }] }),
        (e) => e.status === 401 && /gpt-3.5-turbo/.test(e.message),
      );
    });

    test('/key/update takes effect at once; bad input is 400; unknown key is 404', async () => {
      const k = (await post(px, '/key/generate', { models: ['gpt-4o'] })).json;
      assert.equal((await chat(px, k.key, 'gpt-4o')).status, 200);
      const u = await post(px, '/key/update', { key: k.key, models: ['claude-3'], max_budget: 2, key_alias: `upd-${backend.name}` });
      assert.equal(u.status, 200, u.text);
      assert.deepEqual(u.json.models, ['claude-3']);
      assert.equal(u.json.max_budget, 2);
      assert.equal(u.json.key_alias, `upd-${backend.name}`);
      assertError(await chat(px, k.key, 'gpt-4o'), 401, 'model');
      assert.equal((await chat(px, k.key, 'claude-3')).status, 200);
      assertError(await post(px, '/key/update', { models: ['x'] }), 400, 'key');
      assertError(await post(px, '/key/update', { key: k.key, rpm_limit: 'many' }), 400, 'rpm_limit');
      assertError(await post(px, '/key/update', { key: 'sk-no-such-key-123', models: [] }), 404);
    });

    test('/key/block and /key/unblock', async () => {
      const k = (await post(px, '/key/generate', {})).json;
      assert.equal((await chat(px, k.key)).status, 200);
      const b = await post(px, '/key/block', { key: k.key });
      assert.equal(b.status, 200, b.text);
      assert.equal(b.json.blocked, true);
      const refused = await chat(px, k.key);
      assertError(refused, 401);
      assert.match(refused.json.error.message, /blocked/);
      assert.ok(!refused.text.includes(k.key));
      const ub = await post(px, '/key/unblock', { key: k.token });
      assert.equal(ub.status, 200, ub.text);
      assert.equal(ub.json.blocked, false);
      assert.equal((await chat(px, k.key)).status, 200);
      assertError(await post(px, '/key/block', {}), 400, 'key');
      assertError(await post(px, '/key/block', { key: 'sk-none-such-0000' }), 404);
    });

    test('expired keys are 401 with LiteLLM wording', async () => {
      const k = (await post(px, '/key/generate', { duration: '1s' })).json;
      await sleep(2100);
      const r = await chat(px, k.key);
      assertError(r, 401);
      assert.match(r.json.error.message, /Expired Key/);
      assert.ok(!r.text.includes(k.key));
    });

    test('/key/delete by keys and by key_aliases; deleted keys are 401', async () => {
      const a = (await post(px, '/key/generate', {})).json;
      const b = (await post(px, '/key/generate', { key_alias: `del-${backend.name}` })).json;
      assert.equal((await chat(px, a.key)).status, 200); // cached now
      const d = await post(px, '/key/delete', { keys: [a.key] });
      assert.equal(d.status, 200, d.text);
      assert.deepEqual(d.json.deleted_keys, [a.key]);
      assertError(await chat(px, a.key), 401);
      const d2 = await post(px, '/key/delete', { key_aliases: [`del-${backend.name}`] });
      assert.equal(d2.status, 200, d2.text);
      assertError(await chat(px, b.key), 401);
      assertError(await post(px, '/key/delete', { keys: [a.key] }), 404);
      assertError(await post(px, '/key/delete', {}), 400, 'keys');
      assertError(await post(px, '/key/delete', { keys: 'sk-x' }), 400);
      assertError(await get(px, `/key/info?key=${a.key}`), 404);
    });

    test('/key/regenerate: the new key works, the old one stops (or after its grace period)', async () => {
      const k = (await post(px, '/key/generate', { key_alias: `regen-${backend.name}`, models: ['gpt-4o'] })).json;
      assert.equal((await chat(px, k.key)).status, 200);
      const r = await post(px, '/key/regenerate', { key: k.key });
      assert.equal(r.status, 200, r.text);
      assert.notEqual(r.json.key, k.key);
      assert.match(r.json.key, /^sk-/);
      assert.equal(r.json.key_alias, `regen-${backend.name}`);
      assert.deepEqual(r.json.models, ['gpt-4o']);
      assertError(await chat(px, k.key), 401);
      assert.equal((await chat(px, r.json.key)).status, 200);

      const g = await post(px, '/key/regenerate', { key: r.json.key, grace_period: '1h' });
      assert.equal(g.status, 200, g.text);
      assert.equal((await chat(px, r.json.key)).status, 200, 'old key valid during the grace period');
      assert.equal((await chat(px, g.json.key)).status, 200);
      assertError(await post(px, '/key/regenerate', { key: g.json.key, grace_period: 'a while' }), 400, 'grace_period');
      // LiteLLM's path form.
      const p = await post(px, `/key/${encodeURIComponent(g.json.key)}/regenerate`, {});
      assert.equal(p.status, 200, p.text);
      assertError(await chat(px, g.json.key), 401);
      assert.equal((await chat(px, p.json.key)).status, 200);
      assertError(await get(px, `/key/${p.json.key}/regenerate`), 405);
      // A new key of one's choice must look like one.
      assertError(await post(px, '/key/regenerate', { key: p.json.key, new_key: 'pk-x' }), 400, 'new_key',
        "Invalid value for 'new_key': a custom key must start with 'sk-' and be at most 255 characters");
      const c = await post(px, '/key/regenerate', { key: p.json.key, new_key: `sk-chosen-${backend.name}-01` });
      assert.equal(c.status, 200, c.text);
      assert.equal(c.json.key, `sk-chosen-${backend.name}-01`);
      assert.equal((await chat(px, c.json.key)).status, 200);
      assertError(await post(px, '/key/regenerate', { key: 'sk-none-such-000' }), 404);
    });

    test('/key/list: pages, filters, full objects', async () => {
      for (let i = 0; i < 3; i++) await post(px, '/key/generate', { user_id: 'bob' });
      const l = await get(px, '/key/list?user_id=bob&size=2&page=1');
      assert.equal(l.status, 200, l.text);
      assert.equal(l.json.total_count, 3);
      assert.equal(l.json.current_page, 1);
      assert.equal(l.json.total_pages, 2);
      assert.equal(l.json.keys.length, 2);
      for (const t of l.json.keys) assert.match(t, /^[0-9a-f]{64}$/);
      const p2 = await get(px, '/key/list?user_id=bob&size=2&page=2&return_full_object=true');
      assert.equal(p2.json.keys.length, 1);
      assert.equal(p2.json.keys[0].user_id, 'bob');
      assertError(await get(px, '/key/list?size=0'), 400, 'size');
      assertError(await get(px, '/key/list?page=x'), 400, 'page');
    });

    test('roles: what internal users, viewers and app users may do', async () => {
      const keyOf = async (user) => (await post(px, '/key/generate', { user_id: user })).json;
      const alice = await keyOf('alice');
      const bob = await keyOf('bob');
      const viewer = await keyOf('viewer');
      const iview = await keyOf('iview');
      const app = await keyOf('app');
      const boss = await keyOf('boss');

      // internal_user: keys for themselves only.
      const own = await post(px, '/key/generate', {}, alice.key);
      assert.equal(own.status, 200, own.text);
      assert.equal(own.json.user_id, 'alice');
      assertError(await post(px, '/key/generate', { user_id: 'bob' }, alice.key), 403);
      assertError(await get(px, `/key/info?key=${bob.token}`, alice.key), 403);
      assert.equal((await get(px, `/key/info?key=${own.json.key}`, alice.key)).status, 200);
      assert.equal((await get(px, '/key/info', alice.key)).json.info.user_id, 'alice');
      assertError(await post(px, '/key/update', { key: bob.key, models: [] }, alice.key), 403);
      assertError(await post(px, '/key/delete', { keys: [bob.key] }, alice.key), 403);
      assertError(await post(px, '/key/block', { key: own.json.key }, alice.key), 403);
      const mine = await get(px, '/key/list', alice.key);
      assert.equal(mine.status, 200, mine.text);
      assert.ok(mine.json.total_count >= 2);
      assertError(await get(px, '/key/list?user_id=bob', alice.key), 403);
      assert.equal((await post(px, '/key/delete', { keys: [own.json.key] }, alice.key)).status, 200);

      // Viewers read, never write.
      assert.equal((await get(px, `/key/info?key=${bob.token}`, viewer.key)).status, 200);
      assert.ok((await get(px, '/key/list', viewer.key)).json.total_count > 5);
      assertError(await post(px, '/key/generate', {}, viewer.key), 403);
      assertError(await post(px, '/key/generate', {}, iview.key), 403);
      assertError(await get(px, `/key/info?key=${bob.token}`, iview.key), 403);

      // app_user: LLM routes and their own key's info only.
      assertError(await post(px, '/key/generate', {}, app.key), 403);
      assert.equal((await get(px, '/key/info', app.key)).status, 200);
      assert.equal((await chat(px, app.key, 'gpt-4o')).status, 200);
      assertError(await chat(px, app.key, 'claude-3'), 401, 'model');

      // A proxy_admin user's key is an admin.
      const forBob = await post(px, '/key/generate', { user_id: 'bob' }, boss.key);
      assert.equal(forBob.status, 200, forBob.text);
      assert.equal((await post(px, '/key/block', { key: forBob.json.key }, boss.key)).status, 200);
    });

    test('audit log: one row per change, without the key', async () => {
      const k = (await post(px, '/key/generate', { key_alias: `audit-${backend.name}` })).json;
      await post(px, '/key/update', { key: k.key, rpm_limit: 3 });
      await post(px, '/key/delete', { keys: [k.key] });
      const rows = dbText(db, `SELECT action FROM lx_audit_log WHERE object_id = '${k.token}' ORDER BY changed_at`);
      for (const a of ['created', 'updated', 'deleted']) assert.ok(rows.includes(a), rows);
      assert.ok(!dbText(db, 'SELECT * FROM lx_audit_log').includes(k.key));
    });

    test('keys survive a restart', async () => {
      const k = (await post(px, '/key/generate', { models: ['gpt-4o'] })).json;
      assert.equal(await px.stop(), 0);
      px = await startLlmux(config);
      assert.equal((await chat(px, k.key)).status, 200);
      assertError(await chat(px, k.key, 'claude-3'), 401, 'model');
      assertError(await chat(px, 'sk-never-issued-0000'), 401);
    });

    test('teardown', async () => {
      await px?.stop();
      await mock?.stop();
      await db?.close();
    });
  });
}
