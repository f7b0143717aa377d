// Models added with /model/new on one gateway reach another gateway on the
// same database (SQLite and PostgreSQL): it looks for changes every few seconds.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { databaseBackends } from './lib/databases.mjs';
import { startLlmux, startMock, mockDeployment, request, waitFor, MASTER_KEY, cleanupTempDirs } from './lib/harness.mjs';

after(cleanupTempDirs);

const PROVIDER_SECRET = 'sk-shared-provider-key-41d0c2';
const post = (px, p, body) => request(px.baseURL, p, { body });

async function gateway(mock, db) {
  return startLlmux(
    {
      model_list: [mockDeployment(mock, { name: 'config-model' })],
      general_settings: { master_key: MASTER_KEY, database_url: db.url, store_model_in_db: true },
    },
    { workers: 1 },
  );
}

for (const backend of await databaseBackends()) {
  test(`models on ${backend.name}: a second gateway on the same database picks up added and deleted models`, async (t) => {
    const mock = await startMock();
    t.after(() => mock.stop());
    const db = await backend.open();
    t.after(() => db.close());
    const a = await gateway(mock, db, { workers: 1 });
    t.after(() => a.stop());
    const b = await gateway(mock, db, { workers: 1 });
    t.after(() => b.stop());
    const r = await post(a, '/model/new', { model_name: 'shared-model', litellm_params: { model: 'openai/gpt-4o-mini', api_base: mock.apiBase(), api_key: PROVIDER_SECRET } });
    assert.equal(r.status, 200, r.text);
    const served = async (px) => (await request(px.baseURL, '/v1/chat/completions', { body: { model: 'shared-model', messages: [{ role: 'user', content: 'hi' }] } })).status;
    assert.equal(await served(a), 200);
    await waitFor(async () => (await served(b)) === 200, { timeoutMs: 25_000, intervalMs: 500, what: 'the other gateway to serve the new model' });
    assert.equal((await post(a, '/model/delete', { id: r.json.model_id })).status, 200);
    await waitFor(async () => (await served(b)) !== 200, { timeoutMs: 25_000, intervalMs: 500, what: 'the other gateway to drop the model' });
    assert.ok(!b.logs().includes(PROVIDER_SECRET));
  });

}
