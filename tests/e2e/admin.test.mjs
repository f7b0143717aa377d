// Users, teams and run-time models through LiteLLM's admin API, on SQLite
// and PostgreSQL: every endpoint with good and bad input, role refusals, audit rows, models
// added with /model/new answering through the OpenAI SDK on every worker,
// surviving a restart, gone after /model/delete, their secrets encrypted in
// the database file.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';

import OpenAI from 'openai';

import { assertError, get, post } from './lib/admin.mjs';
import { databaseBackends } from './lib/databases.mjs';
import { startLlmux, startMock, mockDeployment, request, waitFor, MASTER_KEY, cleanupTempDirs } from './lib/harness.mjs';

after(cleanupTempDirs);

const PROVIDER_SECRET = 'sk-stored-provider-key-7c1e55aa90';

const backends = await databaseBackends();

async function gateway(mock, db, { storeModels = true, env, workers = 2, extra = {} } = {}) {
  return startLlmux(
    {
      model_list: [mockDeployment(mock, { name: 'config-model' })],
      general_settings: { master_key: MASTER_KEY, database_url: db.url, store_model_in_db: storeModels },
      ...extra,
    },
    { workers, env },
  );
}

// A mock, a fresh database of `backend` and a gateway on them, all stopped after the test.
async function setup(t, backend, options) {
  const mock = await startMock();
  t.after(() => mock.stop());
  const db = await backend.open();
  t.after(() => db.close());
  const px = await gateway(mock, db, options);
  t.after(() => px.stop());
  return { mock, db, px };
}

async function chat(px, key, model) {
  const client = new OpenAI({ apiKey: key, baseURL: px.baseURL, maxRetries: 0 });
  return client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
}

for (const backend of backends) {
  test(`users on ${backend.name}: create, info, update, list, delete, with bad input and role refusals`, async (t) => {
    const { db, px } = await setup(t, backend);

    // /user/new: generated id, a key returned once, LiteLLM's fields.
    let r = await post(px, '/user/new', { user_email: 'ann@example.com', user_role: 'internal_user', max_budget: 12.5, budget_duration: '30d', models: ['config-model'], rpm_limit: 10, tpm_limit: 1000, metadata: { team: 'core' } });
    assert.equal(r.status, 200, r.text);
    const ann = r.json;
    assert.match(ann.user_id, /^[0-9a-f-]{36}$/);
    assert.equal(ann.user_email, 'ann@example.com');
    assert.equal(ann.user_role, 'internal_user');
    assert.equal(ann.max_budget, 12.5);
    assert.deepEqual(ann.models, ['config-model']);
    assert.equal(ann.rpm_limit, 10);
    assert.equal(ann.tpm_limit, 1000);
    assert.deepEqual(ann.metadata, { team: 'core' });
    assert.equal(ann.spend, 0);
    assert.equal(ann.budget_duration, '30d');
    const resetIn = Date.parse(ann.budget_reset_at) - Date.now();
    assert.ok(resetIn > 29 * 86400e3 && resetIn < 31 * 86400e3, ann.budget_reset_at);
    assert.match(ann.key, /^sk-[A-Za-z0-9_-]{22,}$/);

    // The new user's key calls its model.
    const answer = await chat(px, ann.key, 'config-model');
    assert.ok(answer.choices[0].message.content);

    r = await post(px, '/user/new', { user_id: 'bob', user_email: 'bob@example.com', auto_create_key: false, user_role: 'proxy_admin_viewer' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.user_id, 'bob');
    assert.equal(r.json.key, null);

    // Bad input names the field; duplicates are 409.
    assertError(await post(px, '/user/new', { user_id: 'bob' }), 409, 'user_id');
    assertError(await post(px, '/user/new', { user_email: 'BOB@example.com' }), 409, 'user_email');
    assertError(await post(px, '/user/new', { user_role: 'king' }), 400, 'user_role');
    assertError(await post(px, '/user/new', { max_budget: 'lots' }), 400, 'max_budget');
    assertError(await post(px, '/user/new', { max_budget: -1 }), 400, 'max_budget');
    assertError(await post(px, '/user/new', { budget_duration: '30x' }), 400, 'budget_duration');
    assertError(await post(px, '/user/new', { models: 'gpt-4' }), 400, 'models');
    assertError(await post(px, '/user/new', { rpm_limit: -5 }), 400, 'rpm_limit');
    assertError(await post(px, '/user/new', { metadata: [1] }), 400, 'metadata');
    assertError(await post(px, '/user/new', '{not json'), 400);

    // /user/info: the row, the user's keys and teams.
    r = await get(px, `/user/info?user_id=${ann.user_id}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.user_id, ann.user_id);
    assert.equal(r.json.user_info.user_email, 'ann@example.com');
    assert.equal(r.json.user_info.max_budget, 12.5);
    assert.deepEqual(r.json.user_info.teams, []);
    assert.equal(r.json.keys.length, 1);
    assert.equal(r.json.keys[0].user_id, ann.user_id);
    assert.ok(!r.text.includes(ann.key), 'the raw key is shown once only');
    assert.deepEqual(r.json.teams, []);
    assertError(await get(px, '/user/info?user_id=nobody'), 404, 'user_id');

    // Role refusals: a plain user reads only their own record and creates nothing.
    r = await get(px, '/user/info', ann.key);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.user_id, ann.user_id);
    assertError(await get(px, '/user/info?user_id=bob', ann.key), 403);
    assertError(await post(px, '/user/new', { user_id: 'mallory' }, ann.key), 403);
    assertError(await post(px, '/user/update', { user_id: ann.user_id, max_budget: 1000 }, ann.key), 403);
    assertError(await post(px, '/user/delete', { user_ids: ['bob'] }, ann.key), 403);
    assertError(await get(px, '/user/list', ann.key), 403);

    // /user/update: changed fields only; budget_duration resets the clock; bad input 400.
    r = await post(px, '/user/update', { user_id: ann.user_id, max_budget: 20, budget_duration: '1h', user_alias: 'Ann' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.user_id, ann.user_id);
    assert.equal(r.json.data.max_budget, 20);
    assert.equal(r.json.data.user_alias, 'Ann');
    assert.equal(r.json.data.rpm_limit, 10, 'unchanged fields stay');
    assert.deepEqual(r.json.data.models, ['config-model']);
    const reset = Date.parse(r.json.data.budget_reset_at) - Date.now();
    assert.ok(reset > 3500e3 && reset < 3700e3, r.json.data.budget_reset_at);
    r = await post(px, '/user/update', { user_email: 'bob@example.com', user_role: 'internal_user' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.data.user_role, 'internal_user');
    assertError(await post(px, '/user/update', { user_id: ann.user_id, user_role: 'emperor' }), 400, 'user_role');
    assertError(await post(px, '/user/update', { user_id: 'nobody', max_budget: 1 }), 404, 'user_id');
    assertError(await post(px, '/user/update', { max_budget: 1 }), 400, 'user_id');

    // /user/list: pages, filters.
    for (let i = 0; i < 3; i++) {
      assert.equal((await post(px, '/user/new', { user_id: `list-${i}`, user_role: 'app_user', auto_create_key: false })).status, 200);
    }
    r = await get(px, '/user/list?page=1&page_size=2');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.total, 5);
    assert.equal(r.json.users.length, 2);
    assert.equal(r.json.total_pages, 3);
    r = await get(px, '/user/list?role=app_user');
    assert.equal(r.json.total, 3);
    assert.ok(r.json.users.every((u) => u.user_role === 'app_user'));
    r = await get(px, '/user/list?user_ids=list-0,list-2');
    assert.deepEqual(r.json.users.map((u) => u.user_id).sort(), ['list-0', 'list-2']);
    r = await get(px, `/user/list?user_ids=${ann.user_id}`);
    assert.equal(r.json.users[0].key_count, 1);
    assertError(await get(px, '/user/list?page_size=1000'), 400, 'page_size');
    assertError(await get(px, '/user/list?role=wizard'), 400, 'role');

    // /user/delete: unknown ids 404 (nothing deleted); deleting a user deletes their keys.
    assertError(await post(px, '/user/delete', { user_ids: [ann.user_id, 'ghost'] }), 404, 'user_ids', 'User not found, passed user_id=ghost');
    assertError(await post(px, '/user/delete', {}), 400, 'user_ids', 'No user id passed in (user_ids)');
    assertError(await post(px, '/user/delete', { user_ids: 'bob' }), 400, 'user_ids');
    r = await post(px, '/user/delete', { user_ids: [ann.user_id, 'list-0'] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json, 2);
    assertError(await get(px, `/user/info?user_id=${ann.user_id}`), 404);
    await assert.rejects(chat(px, ann.key, 'config-model'), (e) => e.status === 401);
    assert.equal(db.rows(`SELECT COUNT(*) AS n FROM lx_keys WHERE user_id = '${ann.user_id}'`)[0].n, 0);

    // An audit row for each change.
    const audit = db.rows("SELECT action, table_name, object_id, changed_by FROM lx_audit_log WHERE table_name = 'lx_users' ORDER BY changed_at");
    const has = (action, id) => audit.some((a) => a.action === action && a.object_id === id);
    assert.ok(has('created', ann.user_id) && has('updated', ann.user_id) && has('deleted', ann.user_id), JSON.stringify(audit));
    assert.ok(has('created', 'bob') && has('updated', 'bob') && has('deleted', 'list-0'));
    // A deletion's audit row keeps the record before it, and {} as the change.
    const del = db.rows(`SELECT before_value, updated_values FROM lx_audit_log WHERE table_name = 'lx_users' AND action = 'deleted' AND object_id = '${ann.user_id}'`);
    assert.equal(del.length, 1);
    assert.equal(JSON.parse(del[0].before_value).user_email, 'ann@example.com');
    assert.equal(del[0].updated_values, '{}');
  });

  test(`teams on ${backend.name}: create, info, update, members, list, delete, with bad input and role refusals`, async (t) => {
    const { db, px } = await setup(t, backend);

    const carol = (await post(px, '/user/new', { user_id: 'carol', user_email: 'carol@example.com' })).json;
    const dave = (await post(px, '/user/new', { user_id: 'dave' })).json;
    assert.ok(carol.key && dave.key);

    let r = await post(px, '/team/new', { team_alias: 'Research', members_with_roles: [{ role: 'admin', user_id: 'carol' }, { role: 'user', user_email: 'erin@example.com' }], max_budget: 100, budget_duration: '7d', models: ['config-model'], tpm_limit: 5000, rpm_limit: 50, metadata: { cost_center: 42 } });
    assert.equal(r.status, 200, r.text);
    const team = r.json;
    assert.match(team.team_id, /^[0-9a-f-]{36}$/);
    assert.equal(team.team_alias, 'Research');
    assert.equal(team.max_budget, 100);
    assert.deepEqual(team.models, ['config-model']);
    assert.equal(team.blocked, false);
    assert.ok(team.budget_reset_at);
    const byId = team.members_with_roles.find((m) => m.user_id === 'carol');
    const byEmail = team.members_with_roles.find((m) => m.user_email === 'erin@example.com');
    assert.equal(byId?.role, 'admin', JSON.stringify(team.members_with_roles));
    assert.equal(byEmail?.role, 'user', 'a member given by email gets a user record');
    assert.ok(byEmail.user_id && byEmail.user_id !== 'erin@example.com');

    assertError(await post(px, '/team/new', { team_id: team.team_id }), 400, 'team_id');
    assertError(await post(px, '/team/new', { members_with_roles: [{ role: 'owner', user_id: 'x' }] }), 400, 'members_with_roles');
    assertError(await post(px, '/team/new', { members_with_roles: [{ role: 'user' }] }), 400, 'members_with_roles');
    assertError(await post(px, '/team/new', { max_budget: '100' }), 400, 'max_budget');
    assertError(await post(px, '/team/new', { team_alias: 'x' }, dave.key), 403);

    // member_add: one member or a list; duplicates 400; unknown team 404; team admins may add.
    r = await post(px, '/team/member_add', { team_id: team.team_id, member: { role: 'user', user_id: 'dave' } });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.members_with_roles.some((m) => m.user_id === 'dave'));
    assert.deepEqual(r.json.updated_users.map((u) => u.user_id), ['dave']);
    assertError(await post(px, '/team/member_add', { team_id: team.team_id, member: { role: 'user', user_id: 'dave' } }), 400, 'member');
    assertError(await post(px, '/team/member_add', { team_id: 'no-such-team', member: { user_id: 'dave' } }), 404, 'team_id', 'Team not found for team_id=no-such-team');
    assertError(await post(px, '/team/member_add', { team_id: team.team_id }), 400, 'member');
    assertError(await post(px, '/team/member_add', { team_id: team.team_id, member: [{ user_id: 'z', role: 'boss' }] }), 400, 'member');
    r = await post(px, '/team/member_add', { team_id: team.team_id, member: [{ role: 'user', user_id: 'frank' }, { role: 'user', user_id: 'gina' }] }, carol.key);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.updated_users.length, 2);
    const notAdmin = (route) => `Call not allowed. User not proxy admin OR team admin. route=/team/${route}, team_id=${team.team_id}`;
    assertError(await post(px, '/team/member_add', { team_id: team.team_id, member: { user_id: 'henry' } }, dave.key), 403, undefined, notAdmin('member_add'));
    assertError(await post(px, '/team/member_delete', { team_id: team.team_id, user_id: 'frank' }, dave.key), 403, undefined, notAdmin('member_delete'));

    // member_delete.
    r = await post(px, '/team/member_delete', { team_id: team.team_id, user_id: 'gina' });
    assert.equal(r.status, 200, r.text);
    assert.ok(!r.json.members_with_roles.some((m) => m.user_id === 'gina'));
    assertError(await post(px, '/team/member_delete', { team_id: team.team_id, user_id: 'gina' }), 400);
    assertError(await post(px, '/team/member_delete', { team_id: team.team_id }), 400, 'user_id');
    assertError(await post(px, '/team/member_delete', { team_id: 'nope', user_id: 'dave' }), 404, 'team_id', 'Team id=nope does not exist in db');

    // /user/info shows the teams; /team/info shows members, keys, memberships.
    r = await get(px, '/user/info?user_id=dave');
    assert.deepEqual(r.json.user_info.teams, [team.team_id]);
    assert.equal(r.json.teams[0].team_alias, 'Research');
    r = await get(px, `/team/info?team_id=${team.team_id}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.team_id, team.team_id);
    assert.equal(r.json.team_info.team_alias, 'Research');
    assert.equal(r.json.team_info.members_with_roles.length, 4);
    assert.ok(Array.isArray(r.json.keys));
    assert.equal(r.json.team_memberships.length, 4);
    r = await get(px, `/team/info?team_id=${team.team_id}`, dave.key);
    assert.equal(r.status, 200, 'a member reads their team');
    const outsider = (await post(px, '/user/new', { user_id: 'ivan' })).json;
    assertError(await get(px, `/team/info?team_id=${team.team_id}`, outsider.key), 403);
    assertError(await get(px, '/team/info'), 400, 'team_id');
    assertError(await get(px, '/team/info?team_id=missing'), 404);

    // /team/block stops the team's keys at once; /team/unblock restarts them.
    const teamKey = await post(px, '/key/generate', { team_id: team.team_id });
    assert.equal(teamKey.status, 200, teamKey.text);
    await chat(px, teamKey.json.key, 'config-model');
    r = await post(px, '/team/block', { team_id: team.team_id });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.blocked, true);
    await assert.rejects(chat(px, teamKey.json.key, 'config-model'), (e) => e.status === 401 || e.status === 403);
    r = await post(px, '/team/unblock', { team_id: team.team_id });
    assert.equal(r.json.blocked, false);
    await chat(px, teamKey.json.key, 'config-model');
    assertError(await post(px, '/team/block', { team_id: 'missing' }), 404, 'team_id');
    assertError(await post(px, '/team/block', {}), 400, 'team_id');
    assertError(await post(px, '/team/block', { team_id: team.team_id }, carol.key), 403);

    // /team/update.
    r = await post(px, '/team/update', { team_id: team.team_id, max_budget: 250, blocked: true, team_alias: 'Research 2' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.team_id, team.team_id);
    assert.equal(r.json.data.max_budget, 250);
    assert.equal(r.json.data.blocked, true);
    assert.equal(r.json.data.tpm_limit, 5000, 'unchanged fields stay');
    assert.equal(r.json.data.members_with_roles.length, 4);
    assertError(await post(px, '/team/update', { max_budget: 1 }), 400, 'team_id');
    assertError(await post(px, '/team/update', { team_id: 'missing', max_budget: 1 }), 404, 'team_id');
    assertError(await post(px, '/team/update', { team_id: team.team_id, tpm_limit: 'many' }), 400, 'tpm_limit');
    assertError(await post(px, '/team/update', { team_id: team.team_id, max_budget: 1 }, carol.key), 403);

    // /team/list: admins see all; a user sees their own teams only.
    const other = (await post(px, '/team/new', { team_alias: 'Other' })).json;
    r = await get(px, '/team/list');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.map((x) => x.team_alias).sort(), ['Other', 'Research 2']);
    r = await get(px, '/team/list?user_id=dave', dave.key);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.map((x) => x.team_id), [team.team_id]);
    assertError(await get(px, '/team/list', dave.key), 401);
    assertError(await get(px, '/team/list?user_id=carol', dave.key), 401);

    // /user/new joins teams given by id or as {team_id, user_role}; unknown teams are skipped.
    assert.equal((await post(px, '/user/new', { user_id: 'kim', teams: [other.team_id, 'no-such-team'], auto_create_key: false })).status, 200);
    assert.equal((await post(px, '/user/new', { user_id: 'lee', teams: [{ team_id: other.team_id, user_role: 'admin' }], auto_create_key: false })).status, 200);
    assertError(await post(px, '/user/new', { teams: [{ team_id: other.team_id, user_role: 'owner' }] }), 400, 'teams');
    assertError(await post(px, '/user/new', { teams: 'x' }), 400, 'teams');
    r = await get(px, `/team/info?team_id=${other.team_id}`);
    const roles = Object.fromEntries(r.json.team_info.members_with_roles.map((m) => [m.user_id, m.role]));
    assert.deepEqual(roles, { kim: 'user', lee: 'admin' });

    // /team/delete: unknown ids 404; deletes the team's keys and memberships.
    db.exec(`UPDATE lx_keys SET team_id = '${team.team_id}' WHERE user_id = 'dave'`);
    assertError(await post(px, '/team/delete', { team_ids: [team.team_id, 'ghost'] }), 404, 'team_ids', 'Team not found, passed team_id=ghost');
    assertError(await post(px, '/team/delete', { team_ids: [] }), 400, 'team_ids', 'No team id passed in (team_ids)');
    r = await post(px, '/team/delete', { team_ids: [team.team_id, other.team_id] });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.deleted_teams.sort(), [team.team_id, other.team_id].sort());
    assert.equal(db.rows(`SELECT COUNT(*) AS n FROM lx_team_members WHERE team_id = '${team.team_id}'`)[0].n, 0);
    assert.equal(db.rows("SELECT COUNT(*) AS n FROM lx_keys WHERE user_id = 'dave'")[0].n, 0);
    assertError(await get(px, `/team/info?team_id=${team.team_id}`), 404);

    const audit = db.rows(`SELECT action, before_value, updated_values FROM lx_audit_log WHERE table_name = 'lx_teams' AND object_id = '${team.team_id}'`);
    assert.ok(['created', 'updated', 'deleted'].every((a) => audit.some((x) => x.action === a)), JSON.stringify(audit));
    // A team's deletion keeps the record before it, and no change document.
    const del = audit.find((x) => x.action === 'deleted');
    assert.equal(JSON.parse(del.before_value).team_id, team.team_id);
    assert.equal(del.updated_values, null);
  });

  test(`models on ${backend.name}: /model/new answers at once on every worker, masks and encrypts secrets, survives restart, /model/delete removes it`, async (t) => {
    const mock = await startMock();
    t.after(() => mock.stop());
    const db = await backend.open();
    t.after(() => db.close());
    let px = await gateway(mock, db, { workers: 2 });
    let stopped = false;
    t.after(() => (stopped ? undefined : px.stop()));

    const user = (await post(px, '/user/new', { user_id: 'plain' })).json;
    const newModel = {
      model_name: 'db-model',
      litellm_params: { model: 'openai/gpt-4o-mini', api_base: mock.apiBase(), api_key: PROVIDER_SECRET, temperature: 0.2 },
      model_info: { description: 'added at run time' },
    };

    // Bad input and refusals first.
    assertError(await post(px, '/model/new', newModel, user.key), 403);
    assertError(await post(px, '/model/new', { litellm_params: { model: 'openai/x' } }), 400, 'model_name');
    assertError(await post(px, '/model/new', { model_name: 'x' }), 400, 'litellm_params');
    assertError(await post(px, '/model/new', { model_name: 'x', litellm_params: { model: 'nosuch/x' } }), 400, 'litellm_params');
    assertError(await post(px, '/model/new', { model_name: 'x', litellm_params: { model: 'openai/x', timeout: 'soon' } }), 400, 'litellm_params');
    assertError(await post(px, '/model/delete', {}), 400, 'id');
    assertError(await post(px, '/model/delete', { id: 'nope' }), 404, 'id', 'Model with id=nope not found in db');

    let r = await post(px, '/model/new', newModel);
    assert.equal(r.status, 200, r.text);
    const id = r.json.model_id;
    assert.ok(id);
    assert.equal(r.json.model_name, 'db-model');
    assert.ok(!r.text.includes(PROVIDER_SECRET), 'the answer masks the key');

    // At once, on every worker: concurrent connections spread over both workers.
    await mock.reset();
    const answers = await Promise.all(Array.from({ length: 16 }, () => chat(px, MASTER_KEY, 'db-model')));
    assert.equal(answers.length, 16);
    const last = await mock.last();
    assert.equal(last.headers.authorization, `Bearer ${PROVIDER_SECRET}`, 'the decrypted key reaches the provider');

    // /model/info: every model, config ones included, secrets masked; filter by id.
    r = await get(px, '/model/info');
    assert.equal(r.status, 200, r.text);
    const names = r.json.data.map((m) => m.model_name);
    assert.ok(names.includes('db-model') && names.includes('config-model'), names.join());
    assert.ok(!r.text.includes(PROVIDER_SECRET));
    assert.ok(!r.text.includes('sk-upstream-secret'), 'config secrets are masked too');
    const dbEntry = r.json.data.find((m) => m.model_name === 'db-model');
    assert.equal(dbEntry.model_info.id, id);
    assert.equal(dbEntry.model_info.db_model, true);
    assert.equal(dbEntry.model_info.description, 'added at run time');
    assert.equal(dbEntry.litellm_params.api_key, '********');
    assert.equal(dbEntry.litellm_params.temperature, 0.2);
    r = await get(px, `/model/info?litellm_model_id=${id}`);
    assert.equal(r.json.data.length, 1);
    assertError(await post(px, '/model/new', { ...newModel, model_info: { id } }), 409, 'model_info.id');
    assertError(await get(px, '/model/info?litellm_model_id=unknown'), 404, 'litellm_model_id');
    r = await get(px, '/model/info', user.key);
    assert.equal(r.status, 200, 'any internal user may list models');

    // The secret is encrypted in the database (file and WAL), never in clear.
    const rows = db.rows('SELECT litellm_params FROM lx_models');
    assert.equal(rows.length, 1);
    const stored = JSON.parse(rows[0].litellm_params);
    assert.match(stored.api_key, /^lxenc:v1:[A-Za-z0-9+/=]+$/);
    for (const f of db.dir ? await readdir(db.dir, { recursive: true, withFileTypes: true }) : []) {
      if (!f.isFile()) continue;
      const file = path.join(f.parentPath ?? f.path, f.name);
      const bytes = await readFile(file);
      assert.ok(!bytes.includes(Buffer.from(PROVIDER_SECRET)), `${file} holds the key in clear`);
    }
    assert.ok(!px.logs().includes(PROVIDER_SECRET), 'never logged');
    assert.ok(db.rows(`SELECT COUNT(*) AS n FROM lx_audit_log WHERE table_name = 'lx_models' AND object_id = '${id}' AND action = 'created'`)[0].n === 1);
    assert.ok(!JSON.stringify(db.rows('SELECT before_value, updated_values FROM lx_audit_log')).includes(PROVIDER_SECRET));

    // /model/update: merged into the stored entry; the stored secret is kept (re-encrypted).
    r = await post(px, '/model/update', { model_info: { id, tier: 'gold' }, litellm_params: { temperature: 0.7 } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.litellm_params.temperature, 0.7);
    assert.equal(r.json.litellm_params.api_key, '********');
    assert.equal(r.json.model_info.tier, 'gold');
    await chat(px, MASTER_KEY, 'db-model');
    const updated = await mock.last();
    assert.equal(updated.headers.authorization, `Bearer ${PROVIDER_SECRET}`);
    assert.equal(JSON.parse(updated.body).temperature, 0.7);
    assert.match(JSON.parse(db.rows(`SELECT litellm_params FROM lx_models WHERE model_id = '${id}'`)[0].litellm_params).api_key, /^lxenc:v1:/);
    assertError(await post(px, '/model/update', { litellm_params: { temperature: 1 } }), 400, 'model_info.id');
    assertError(await post(px, '/model/update', { model_info: { id: 'nope' } }), 404, 'model_info.id', 'Model with id=nope not found in db');
    assertError(await post(px, '/model/update', { model_info: { id }, litellm_params: { model: 'bogus/x' } }), 400, 'litellm_params');
    assertError(await post(px, '/model/update', { model_info: { id }, litellm_params: { temperature: 1 } }, user.key), 403);

    // A secret given as a document (an object of credentials) is encrypted whole.
    const DOC_SECRET = 'doc-secret-5e0b7a1f';
    r = await post(px, '/model/new', { model_name: 'doc-model', litellm_params: { model: 'openai/gpt-4o-mini', api_base: mock.apiBase(), client_secret: { k: DOC_SECRET } } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.litellm_params.client_secret, '********');
    assert.ok(!JSON.stringify(db.rows('SELECT litellm_params FROM lx_models')).includes(DOC_SECRET));
    assert.ok(!(await get(px, '/model/info')).text.includes(DOC_SECRET));

    // Restart: the stored model is loaded at start.
    assert.equal(await px.stop(), 0);
    px = await gateway(mock, db, { workers: 2 });
    await chat(px, MASTER_KEY, 'db-model');
    await chat(px, MASTER_KEY, 'doc-model');
    assert.deepEqual(JSON.parse((await mock.last()).body).client_secret, { k: DOC_SECRET }, 'decrypted back into a document');
    // SIGHUP rebuilds from the file and the store: the stored model stays.
    px.proc.kill('SIGHUP');
    await waitFor(() => /config reloaded/.test(px.logs()), { what: 'the reload' });
    await chat(px, MASTER_KEY, 'db-model');

    // A config model cannot be deleted through the API; the stored one can, and is gone at once.
    const cfgId = (await get(px, '/model/info')).json.data.find((m) => m.model_name === 'config-model').model_info.id;
    assertError(await post(px, '/model/delete', { id: cfgId }), 400, 'id', `Model id = ${cfgId} is defined in the config file, not stored: remove it from the config file`);
    assertError(await post(px, '/model/update', { model_info: { id: cfgId } }), 400, 'model_info.id', `Model id = ${cfgId} is defined in the config file, not stored: change it in the config file`);
    r = await post(px, '/model/delete', { id });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.message, `Model: ${id} deleted successfully`);
    const gone = await Promise.allSettled(Array.from({ length: 8 }, () => chat(px, MASTER_KEY, 'db-model')));
    assert.ok(gone.every((g) => g.status === 'rejected' && g.reason.status >= 400 && g.reason.status < 500), JSON.stringify(gone.map((g) => g.reason?.status)));
    assertError(await get(px, `/model/info?litellm_model_id=${id}`), 404);
    await chat(px, MASTER_KEY, 'config-model');

    // A tampered secret in the database: at the next rebuild the model is skipped with a
    // warning naming it, the others stay.
    const tampered = (await post(px, '/model/new', { ...newModel, model_name: 'tampered' })).json.model_id;
    await chat(px, MASTER_KEY, 'tampered');
    const lpRow = JSON.parse(db.rows(`SELECT litellm_params FROM lx_models WHERE model_id = '${tampered}'`)[0].litellm_params);
    const flip = lpRow.api_key.length - 8;
    lpRow.api_key = lpRow.api_key.slice(0, flip) + (lpRow.api_key[flip] === 'A' ? 'B' : 'A') + lpRow.api_key.slice(flip + 1);
    db.exec(`UPDATE lx_models SET litellm_params = '${JSON.stringify(lpRow)}' WHERE model_id = '${tampered}'`);
    const reloads = (px.logs().match(/config reloaded/g) || []).length;
    px.proc.kill('SIGHUP');
    await waitFor(() => (px.logs().match(/config reloaded/g) || []).length > reloads, { what: 'the reload' });
    assert.match(px.logs(), new RegExp(`stored model 'tampered' \\(id ${tampered}\\) skipped`));
    await assert.rejects(chat(px, MASTER_KEY, 'tampered'), (e) => e.status >= 400 && e.status < 500);
    await chat(px, MASTER_KEY, 'doc-model');
    assert.equal((await post(px, '/model/delete', { id: tampered })).status, 200);

    // A wrong salt key: the model is skipped with a warning naming it, not its secret.
    assert.equal((await post(px, '/model/new', { ...newModel, model_name: 'salted' })).status, 200);
    assert.equal(await px.stop(), 0);
    px = await gateway(mock, db, { workers: 1, env: { LLMUX_SALT_KEY: 'another-salt' } });
    await assert.rejects(chat(px, MASTER_KEY, 'salted'), (e) => e.status >= 400 && e.status < 500);
    assert.match(px.logs(), /stored model 'salted' \(id [^)]+\) skipped/);
    assert.ok(!px.logs().includes(PROVIDER_SECRET));
    await px.stop();
    stopped = true;
  });

  test(`models on ${backend.name}: without store_model_in_db the model endpoints refuse with 400`, async (t) => {
    const { px } = await setup(t, backend, { storeModels: false, workers: 1 });
    const r = await post(px, '/model/new', { model_name: 'x', litellm_params: { model: 'openai/x' } });
    assertError(r, 400);
    assert.match(r.json.error.message, /STORE_MODEL_IN_DB/);
    assertError(await post(px, '/model/delete', { id: 'x' }), 400);
    assert.equal((await get(px, '/model/info')).status, 200);
  });
}

// The admin routes answer 503 in OpenAI's shape while the database is down,
// and serve again once it is back (the store reconnects by itself).
const hasPostgres = backends.some((b) => b.name === 'PostgreSQL');
test('admin routes during a PostgreSQL outage: 503, then served again', { skip: !hasPostgres && 'no PostgreSQL' }, async (t) => {
  const { startPostgres } = await import('./lib/postgres.mjs');
  const pg = await startPostgres();
  t.after(() => pg.destroy());
  const mock = await startMock();
  t.after(() => mock.stop());
  const px = await gateway(mock, { url: pg.url }, { workers: 1 });
  t.after(() => px.stop('SIGKILL'));
  assert.equal((await post(px, '/team/new', { team_id: 'steady' })).status, 200);
  await pg.kill();
  const calls = [
    ['/user/info', () => get(px, '/user/info?user_id=nobody')],
    ['/user/list', () => get(px, '/user/list')],
    ['/user/update', () => post(px, '/user/update', { user_id: 'nobody' })],
    ['/user/delete', () => post(px, '/user/delete', { user_ids: ['nobody'] })],
    ['/team/info', () => get(px, '/team/info?team_id=steady')],
    ['/team/list', () => get(px, '/team/list')],
    ['/team/update', () => post(px, '/team/update', { team_id: 'steady' })],
    ['/team/delete', () => post(px, '/team/delete', { team_ids: ['steady'] })],
    ['/team/member_add', () => post(px, '/team/member_add', { team_id: 'steady', member: { user_id: 'u' } })],
    ['/key/list', () => get(px, '/key/list')],
    ['/key/delete', () => post(px, '/key/delete', { keys: ['sk-none-such'] })],
    ['/model/delete', () => post(px, '/model/delete', { id: 'none-such' })],
    ['/global/spend', () => get(px, '/global/spend')],
    ['/global/spend/keys', () => get(px, '/global/spend/keys')],
  ];
  for (const [route, call] of calls) {
    const r = await call();
    assert.equal(r.status, 503, `${route}: ${r.text}`);
    assertError(r, 503, null, 'The database is unavailable; try again shortly');
  }
  await pg.start();
  await waitFor(async () => (await get(px, '/team/info?team_id=steady')).status === 200, { timeoutMs: 10_000, what: 'the store to reconnect' });
  assert.equal((await get(px, '/team/list')).json[0].team_id, 'steady');
  assert.equal((await get(px, '/user/list')).status, 200);
});
