// Authentication and the admin API's dispatch: master key, virtual keys,
// roles and route permissions.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { startLlmux, startMock, mockDeployment, request, MASTER_KEY, cleanupTempDirs } from './lib/harness.mjs';

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
