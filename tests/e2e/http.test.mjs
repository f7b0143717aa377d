// HTTP/1.x on raw sockets: keep-alive, pipelining, chunked bodies,
// 100-continue, HTTP/1.0, slow clients, idle timeouts, health endpoints.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startMock, mockDeployment, startLlmux, cleanupTempDirs, RawConn, rawRequest, request, sleep, MASTER_KEY,
} from './lib/harness.mjs';

let proxy;
let mock;
const AUTH = { authorization: `Bearer ${MASTER_KEY}` };
const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' };
const CHAT = JSON.stringify({ model: 'local', messages: [{ role: 'user', content: 'hi' }] });
const STREAM = JSON.stringify({ model: 'local', messages: [{ role: 'user', content: 'hi' }], stream: true });

before(async () => {
  mock = await startMock();
  proxy = await startLlmux({
    model_list: [
      { model_name: 'local', litellm_params: { model: 'openai/local', mock_response: 'Hello from llmux' } },
      mockDeployment(mock, { name: 'slow', directives: { latency_ms: 300 } }),
    ],
    general_settings: { master_key: MASTER_KEY, request_header_timeout: 1, keepalive_timeout: 1 },
  });
});

after(async () => {
  await proxy?.stop();
  await mock?.stop();
  await cleanupTempDirs();
});

test('keep-alive: two requests on one socket', async () => {
  const c = await RawConn.connect(proxy.port);
  try {
    await c.write(rawRequest({ method: 'GET', path: '/health' }));
    const r1 = await c.readResponse();
    assert.equal(r1.status, 200);
    assert.equal(r1.version, '1.1');
    assert.notEqual((r1.headers.connection || '').toLowerCase(), 'close');
    await c.write(rawRequest({ path: '/v1/chat/completions', headers: JSON_AUTH, body: CHAT }));
    const r2 = await c.readResponse();
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.json.choices[0].message.content, 'Hello from llmux');
    assert.equal(c.ended, false, 'the socket is still open');
  } finally {
    c.close();
  }
});

test('a streamed (chunked) response, then another request on the same socket', async () => {
  const c = await RawConn.connect(proxy.port);
  try {
    await c.write(rawRequest({ path: '/chat/completions', headers: JSON_AUTH, body: STREAM }));
    const r1 = await c.readResponse();
    assert.equal(r1.status, 200);
    assert.match(r1.headers['content-type'], /^text\/event-stream/);
    assert.match(r1.headers['transfer-encoding'] || '', /chunked/);
    assert.ok(r1.text.trimEnd().endsWith('data: [DONE]'), r1.text);
    await c.write(rawRequest({ method: 'GET', path: '/health/liveliness' }));
    const r2 = await c.readResponse();
    assert.equal(r2.status, 200);
  } finally {
    c.close();
  }
});

test('pipelining: three requests written at once get three responses in order', async () => {
  const c = await RawConn.connect(proxy.port);
  try {
    await c.write(Buffer.concat([
      rawRequest({ path: '/chat/completions', headers: { ...JSON_AUTH, 'x-request-id': 'pipe-1' }, body: CHAT }),
      rawRequest({ method: 'GET', path: '/v1/models', headers: { ...AUTH, 'x-request-id': 'pipe-2' } }),
      rawRequest({ path: '/v1/chat/completions', headers: { ...JSON_AUTH, 'x-request-id': 'pipe-3' }, body: STREAM }),
    ]));
    const r1 = await c.readResponse();
    const r2 = await c.readResponse();
    const r3 = await c.readResponse();
    assert.deepEqual([r1.status, r2.status, r3.status], [200, 200, 200]);
    assert.deepEqual([r1.headers['x-request-id'], r2.headers['x-request-id'], r3.headers['x-request-id']], ['pipe-1', 'pipe-2', 'pipe-3']);
    assert.equal(r1.json.object, 'chat.completion');
    assert.equal(r2.json.object, 'list');
    assert.match(r3.text, /data: \[DONE\]/);
  } finally {
    c.close();
  }
});

test('pipelining: a slow upstream answer first still comes back first', async () => {
  const c = await RawConn.connect(proxy.port);
  try {
    await c.write(Buffer.concat([
      rawRequest({ path: '/chat/completions', headers: { ...JSON_AUTH, 'x-request-id': 'slow-1' }, body: JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'hi' }] }) }),
      rawRequest({ method: 'GET', path: '/health', headers: { 'x-request-id': 'fast-2' } }),
      rawRequest({ path: '/chat/completions', headers: { ...JSON_AUTH, 'x-request-id': 'fast-3' }, body: CHAT }),
    ]));
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const r = await c.readResponse();
      assert.equal(r.status, 200, r.text);
      ids.push(r.headers['x-request-id']);
      if (i === 0) assert.equal(r.json.choices[0].message.content, 'Hello! This is llmux-mock.');
    }
    assert.deepEqual(ids, ['slow-1', 'fast-2', 'fast-3']);
  } finally {
    c.close();
  }
});

test('chunked request body', async () => {
  const c = await RawConn.connect(proxy.port);
  try {
    const body = Buffer.from(CHAT);
    const parts = [body.subarray(0, 5), body.subarray(5, 17), body.subarray(17)];
    const head = rawRequest({ path: '/chat/completions', headers: { ...JSON_AUTH, 'transfer-encoding': 'chunked' } });
    await c.write(head);
    for (const p of parts) {
      await c.write(Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]));
      await sleep(20);
    }
    await c.write('0\r\n\r\n');
    const r = await c.readResponse();
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.content, 'Hello from llmux');
  } finally {
    c.close();
  }
});

test('Expect: 100-continue gets an interim 100 before the body is sent', async () => {
  const c = await RawConn.connect(proxy.port);
  try {
    const body = Buffer.from(CHAT);
    await c.write(rawRequest({ path: '/chat/completions', headers: { ...JSON_AUTH, expect: '100-continue', 'content-length': String(body.length) } }));
    const interim = await c.readResponse({ timeoutMs: 2000 });
    assert.equal(interim.status, 100);
    await c.write(body);
    const r = await c.readResponse();
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.content, 'Hello from llmux');
  } finally {
    c.close();
  }
  // A request refused before its body (no auth) need not wait for it.
  const c2 = await RawConn.connect(proxy.port);
  try {
    await c2.write(rawRequest({ path: '/chat/completions', headers: { 'content-type': 'application/json', expect: '100-continue', 'content-length': '100000' } }));
    const r = await c2.readResponse({ timeoutMs: 2000 });
    assert.ok(r.status === 401 || r.status === 100, `401 (or 100) expected, got ${r.status}`);
    if (r.status === 100) {
      await c2.write(Buffer.alloc(100000, ' '));
      assert.equal((await c2.readResponse()).status, 401);
    }
  } finally {
    c2.close();
  }
});

test('HTTP/1.0: answered, then the connection is closed; streams are close-delimited', async () => {
  const c = await RawConn.connect(proxy.port);
  await c.write('GET /health HTTP/1.0\r\n\r\n');
  const r = await c.readResponse();
  assert.equal(r.status, 200);
  assert.equal(r.json.status, 'healthy');
  assert.ok(await c.waitClosed(2000), 'connection closed after an HTTP/1.0 response');
  c.close();

  const s = await RawConn.connect(proxy.port);
  await s.write(rawRequest({ version: '1.0', path: '/chat/completions', headers: JSON_AUTH, body: STREAM }));
  const rs = await s.readResponse();
  assert.equal(rs.status, 200);
  assert.ok(!/chunked/i.test(rs.headers['transfer-encoding'] || ''), 'no chunked encoding for an HTTP/1.0 client');
  assert.match(rs.text, /^data: /);
  assert.ok(rs.text.trimEnd().endsWith('data: [DONE]'), rs.text);
  s.close();
});

test('slowloris: headers trickling in past request_header_timeout are cut off; others are served', async () => {
  const slow = await RawConn.connect(proxy.port);
  const req = rawRequest({ method: 'GET', path: '/health', headers: { 'x-filler': 'abcdefghij' } });
  const t0 = Date.now();
  let sent = 0;
  const trickle = (async () => {
    for (const byte of req) {
      if (slow.ended) break;
      try { await slow.write(Buffer.from([byte])); } catch { break; }
      sent++;
      await sleep(500);
    }
  })();
  // Meanwhile, other clients are served promptly.
  const latencies = [];
  while (Date.now() - t0 < 1500) {
    const t = Date.now();
    const r = await request(proxy.baseURL, '/health', { method: 'GET', key: null });
    assert.equal(r.status, 200);
    latencies.push(Date.now() - t);
    await sleep(100);
  }
  assert.ok(Math.max(...latencies) < 500, `other clients were slow: ${latencies.join(',')} ms`);
  const closed = await slow.waitClosed(3000);
  const ms = Date.now() - t0;
  assert.ok(closed, `the slow connection was still open after ${ms} ms (${sent} bytes sent)`);
  assert.ok(ms < 3000, `cut off after ${ms} ms (request_header_timeout: 1 s)`);
  assert.ok(sent < req.length, 'cut off before the request was complete');
  // Either a bare close or a 408.
  const got = slow.buf.toString('latin1');
  assert.ok(got === '' || /^HTTP\/1\.1 408 /.test(got), `unexpected bytes: ${JSON.stringify(got)}`);
  slow.close();
  await trickle;
});

test('idle keep-alive connections are closed after keepalive_timeout', async () => {
  const c = await RawConn.connect(proxy.port);
  await c.write(rawRequest({ method: 'GET', path: '/health' }));
  assert.equal((await c.readResponse()).status, 200);
  const t0 = Date.now();
  assert.ok(await c.waitClosed(3000), 'the idle connection was not closed within 3 s (keepalive_timeout: 1)');
  const ms = Date.now() - t0;
  assert.ok(ms >= 700, `closed too early: ${ms} ms`);
  c.close();
  // An idle connection that never sent a byte is closed too.
  const c2 = await RawConn.connect(proxy.port);
  assert.ok(await c2.waitClosed(3000), 'a silent connection was not closed within 3 s');
  c2.close();
});

test('/health needs no auth; liveliness and readiness answer 200 while serving', async () => {
  for (const p of ['/health', '/health/liveliness', '/health/readiness']) {
    const r = await request(proxy.baseURL, p, { method: 'GET', key: null });
    assert.equal(r.status, 200, `${p}: ${r.text}`);
    assert.ok(r.json !== undefined, `${p} answers JSON: ${r.text}`);
    assert.match(r.headers.get('content-type') || '', /json/);
  }
  // An LLM route still requires the key.
  assert.equal((await request(proxy.baseURL, '/v1/models', { method: 'GET', key: null })).status, 401);
});
