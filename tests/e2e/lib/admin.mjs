// Helpers of the admin API tests: calls with the master key (or another key)
// and checks of OpenAI-shaped errors ({"error": {"message", "type", "param",
// "code"}}, code being the status as a string, as LiteLLM answers).

import assert from 'node:assert/strict';

import { request, MASTER_KEY } from './harness.mjs';

export const get = (px, p, key = MASTER_KEY) => request(px.baseURL, p, { method: 'GET', key });
export const post = (px, p, body, key = MASTER_KEY) => request(px.baseURL, p, { body, key });

// status, and when given: the error's param, and its message (a string: equal; a RegExp: matched).
export function assertError(r, status, param, message) {
  assert.equal(r.status, status, r.text);
  assert.equal(typeof r.json?.error?.message, 'string', r.text);
  assert.equal(r.json.error.code, String(status), r.text);
  if (param !== undefined) assert.equal(r.json.error.param, param, r.text);
  if (typeof message === 'string') assert.equal(r.json.error.message, message, r.text);
  else if (message) assert.match(r.json.error.message, message, r.text);
}
