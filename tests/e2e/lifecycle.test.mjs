// Process lifecycle: client disconnects, SIGTERM drain, drain_timeout, SIGHUP
// reload (good and bad files), --check, and os.environ/ references.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import {
  startMock, startLlmux, runLlmux, mockDeployment, cleanupTempDirs, openStream, request, chatBody,
  connectRefused, waitExit, waitFor, sleep, toYaml, RawConn, rawRequest, MASTER_KEY,
} from './lib/harness.mjs';

const MOCK_CONTENT = 'Hello! This is llmux-mock.';
let mock;

before(async () => {
  mock = await startMock();
});

after(async () => {
  await mock?.stop();
  await cleanupTempDirs();
});

const activeStreams = async () => (await mock.stats()).active_streams;

test('a client that disconnects mid-stream cancels the upstream stream', async () => {
  const proxy = await startLlmux({
    model_list: [mockDeployment(mock, { name: 'slow', directives: { chunks: 50, interval_ms: 100 } })],
    general_settings: { master_key: MASTER_KEY },
  });
  try {
    await waitFor(async () => (await activeStreams()) === 0, { what: 'no stream left over from earlier tests' });
    const ac = new AbortController();
    const s = await openStream(proxy.baseURL, '/chat/completions', chatBody('slow', { stream: true }), { signal: ac.signal });
    assert.equal(s.status, 200);
    assert.ok(await s.next(), 'first event');
    assert.ok(await s.next(), 'second event');
    assert.equal(await activeStreams(), 1, 'the mock is streaming to llmux');
    ac.abort();
    await s.rest();
    const t0 = Date.now();
    await waitFor(async () => (await activeStreams()) === 0, { timeoutMs: 2000, what: 'the upstream stream to be cancelled (mock active_streams back to 0)' });
    assert.ok(Date.now() - t0 < 2000);
    // The gateway is fine afterwards.
    const r = await request(proxy.baseURL, '/chat/completions', { body: chatBody('slow') });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].message.content, MOCK_CONTENT);
  } finally {
    await proxy.stop('SIGKILL');
  }
});

test('SIGTERM drains: the in-flight stream completes, new connections are refused, exit 0', async () => {
  const proxy = await startLlmux({
    model_list: [mockDeployment(mock, { name: 'slow', directives: { chunks: 10, interval_ms: 100 } })],
    general_settings: { master_key: MASTER_KEY },
  });
  let code;
  try {
    const s = await openStream(proxy.baseURL, '/chat/completions', chatBody('slow', { stream: true }));
    assert.equal(s.status, 200);
    await s.next(); // role chunk
    await s.next(); // first piece
    // A readiness probe whose request is half-way in when the drain starts.
    const probe = await RawConn.connect(proxy.port);
    await probe.write(rawRequest({ method: 'GET', path: '/health/readiness' }));
    assert.equal((await probe.readResponse()).status, 200);
    await probe.write('GET /health/readiness HTTP/1.1\r\nHost: localhost\r\n');
    await sleep(50);

    proxy.proc.kill('SIGTERM');
    const t0 = Date.now();
    const restP = s.rest();
    await sleep(50);
    await probe.write('\r\n');
    const ready = await probe.readResponse({ timeoutMs: 1000 });
    assert.equal(ready.status, 503, `readiness while draining: ${ready.text}`);
    let refusedAt = null;
    await waitFor(async () => { if (await connectRefused(proxy.port, 300)) { refusedAt = Date.now(); return true; } return false; },
      { timeoutMs: 800, what: 'new connections to be refused after SIGTERM' });
    const rest = await restP;
    const streamEnd = Date.now();
    assert.ok(refusedAt - t0 < 800 && refusedAt < streamEnd, 'connections were refused while the stream was still running');
    assert.equal(rest.readError, undefined, `the stream broke: ${rest.readError}`);
    assert.ok(rest.done, `the stream completed with [DONE]: ${JSON.stringify(rest.events.slice(-3))}`);
    assert.equal(rest.error, null);
    assert.equal(rest.text, MOCK_CONTENT);
    assert.ok(streamEnd - t0 >= 500, `the stream took its time (${streamEnd - t0} ms), it was not cut short`);

    probe.close();
    const exit = await waitExit(proxy.proc, 5000);
    assert.ok(exit, 'llmux exited after the drain');
    code = exit.code;
    assert.equal(exit.code, 0, `exit code (signal ${exit.signal})\n${proxy.logs()}`);
  } finally {
    if (code === undefined) await proxy.stop('SIGKILL').catch(() => {});
  }
});

test('SIGTERM with drain_timeout: 1 and a never-ending stream exits 0 within ~2 s', async () => {
  const proxy = await startLlmux({
    model_list: [mockDeployment(mock, { name: 'endless', directives: { chunks: 100000, interval_ms: 200 }, params: { timeout: 600, stream_timeout: 30 } })],
    general_settings: { master_key: MASTER_KEY, drain_timeout: 1 },
  });
  let exit;
  try {
    const s = await openStream(proxy.baseURL, '/chat/completions', chatBody('endless', { stream: true }));
    assert.equal(s.status, 200);
    await s.next();
    await s.next();
    const t0 = Date.now();
    proxy.proc.kill('SIGTERM');
    exit = await waitExit(proxy.proc, 4000);
    const ms = Date.now() - t0;
    assert.ok(exit, 'llmux did not exit within 4 s of SIGTERM (drain_timeout: 1)');
    assert.equal(exit.code, 0, `exit code (signal ${exit.signal})`);
    assert.ok(ms >= 800 && ms < 2500, `exited ${ms} ms after SIGTERM`);
    // The client's stream ended (cut, without [DONE]).
    const rest = await Promise.race([s.rest(), sleep(2000).then(() => null)]);
    assert.ok(rest, 'the client stream ended when llmux exited');
    assert.equal(rest.done, false, 'a cut stream must not claim completion with [DONE]');
    await waitFor(async () => (await activeStreams()) === 0, { timeoutMs: 2000, what: 'the upstream stream to be closed' });
  } finally {
    if (!exit) await proxy.stop('SIGKILL').catch(() => {});
  }
});

test('SIGHUP reloads the config; a stream started before keeps the old config', async () => {
  const config = (v) => ({
    model_list: [
      { model_name: 'local', litellm_params: { model: 'openai/local', mock_response: `answer v${v}` } },
      mockDeployment(mock, { name: 'slow', directives: { chunks: 8, interval_ms: 100, content: `stream content v${v}` } }),
      v === 1
        ? { model_name: 'gone-in-v2', litellm_params: { model: 'openai/x', mock_response: 'bye' } }
        : { model_name: 'added-in-v2', litellm_params: { model: 'openai/y', mock_response: 'hi' } },
    ],
    general_settings: { master_key: MASTER_KEY },
  });
  const proxy = await startLlmux(config(1));
  try {
    const local = async () => (await request(proxy.baseURL, '/chat/completions', { body: chatBody('local') })).json?.choices?.[0]?.message?.content;
    assert.equal(await local(), 'answer v1');
    const s = await openStream(proxy.baseURL, '/chat/completions', chatBody('slow', { stream: true }));
    await s.next();
    await s.next();

    await proxy.writeConfig(config(2));
    proxy.proc.kill('SIGHUP');
    await waitFor(async () => (await local()) === 'answer v2', { timeoutMs: 3000, what: 'the reloaded mock_response' });

    const rest = await s.rest();
    assert.ok(rest.done, 'the old stream completed');
    assert.equal(rest.text, 'stream content v1', 'the stream started before the reload kept its content');

    const ids = (await request(proxy.baseURL, '/v1/models', { method: 'GET' })).json.data.map((m) => m.id).sort();
    assert.deepEqual(ids, ['added-in-v2', 'local', 'slow']);
    const gone = await request(proxy.baseURL, '/chat/completions', { body: chatBody('gone-in-v2') });
    assert.equal(gone.status, 400, gone.text);
    const s2 = await openStream(proxy.baseURL, '/chat/completions', chatBody('slow', { stream: true }));
    assert.equal((await s2.rest()).text, 'stream content v2');
    assert.equal(proxy.proc.exitCode, null, 'still running');
  } finally {
    await proxy.stop('SIGKILL');
  }
});

test('SIGHUP with a broken config file is refused with an ERROR log line; the old config keeps serving', async () => {
  const good = {
    model_list: [{ model_name: 'local', litellm_params: { model: 'openai/local', mock_response: 'still the old one' } }],
    general_settings: { master_key: MASTER_KEY },
  };
  const proxy = await startLlmux(good);
  try {
    const ask = () => request(proxy.baseURL, '/chat/completions', { body: chatBody('local') });
    const broken = [
      'model_list:\n  - model_name: local\n    litellm_params: [\n', // YAML syntax
      'model_list:\n  - model_name: local\n    litellm_params:\n      api_base: http://x\n', // no model
      toYaml({ ...good, general_settings: { master_key: 'os.environ/LLMUX_E2E_SURELY_UNSET_VAR' } }), // missing env var
    ];
    for (const [i, text] of broken.entries()) {
      const before = proxy.logs().length;
      await proxy.writeConfig(text);
      proxy.proc.kill('SIGHUP');
      const line = await waitFor(() => proxy.logs().slice(before).split('\n').find((l) => /\bERROR\b/.test(l)),
        { timeoutMs: 3000, what: `an ERROR log line for broken config #${i}` });
      assert.match(line, /config\.yaml/, `the ERROR line names the file: ${line}`);
      const r = await ask();
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.choices[0].message.content, 'still the old one');
      // Old auth still applies (#2 would have changed the master key).
      assert.equal((await request(proxy.baseURL, '/chat/completions', { key: 'sk-wrong', body: chatBody('local') })).status, 401);
      assert.equal(proxy.proc.exitCode, null, 'llmux is still running');
    }
  } finally {
    await proxy.stop('SIGKILL');
  }
});

test('--check: exit 0 and a summary for a good config; exit 1 and file:line: message for a bad one', async () => {
  const good = await runLlmux(['--config', '$CONFIG', '--check'], {
    config: {
      model_list: [
        mockDeployment(mock, { name: 'gpt-4o' }),
        { model_name: 'local', litellm_params: { model: 'openai/local', mock_response: 'x' } },
      ],
      general_settings: { master_key: MASTER_KEY },
    },
  });
  assert.equal(good.code, 0, `stdout: ${good.stdout}\nstderr: ${good.stderr}`);
  assert.match(good.stdout + good.stderr, /valid/i);
  assert.doesNotMatch(good.stdout + good.stderr, /listening/);

  const badType = [
    'model_list:',
    '  - model_name: a',
    '    litellm_params:',
    '      model: openai/x',
    '      timeout: not-a-number',
    '',
  ].join('\n');
  const r1 = await runLlmux(['--config', '$CONFIG', '--check'], { config: badType });
  assert.equal(r1.code, 1, `stderr: ${r1.stderr}`);
  assert.ok(r1.stderr.includes(`llmux: ${r1.configPath}:5: `), `"llmux: FILE:5: message" expected, got ${JSON.stringify(r1.stderr)}`);
  assert.match(r1.stderr, /timeout/);

  const noModel = 'model_list:\n  - model_name: a\n    litellm_params:\n      api_base: http://x\n';
  const r2 = await runLlmux(['--config', '$CONFIG', '--check'], { config: noModel });
  assert.equal(r2.code, 1);
  const m = r2.stderr.match(/^llmux: (.+):(\d+): (.+)$/m);
  assert.ok(m, `file:line: message expected, got ${JSON.stringify(r2.stderr)}`);
  assert.equal(m[1], r2.configPath);
  assert.ok(Number(m[2]) >= 2 && Number(m[2]) <= 4, `line ${m[2]} points into the bad entry`);
  assert.match(m[3], /model/);

  const syntax = 'model_list:\n  - model_name: a\n    litellm_params: [\n';
  const r3 = await runLlmux(['--config', '$CONFIG', '--check'], { config: syntax });
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /^llmux: .+:\d+: /m);

  const r4 = await runLlmux(['--config', '/nonexistent/llmux-e2e.yaml', '--check']);
  assert.equal(r4.code, 1);
  assert.match(r4.stderr, /nonexistent\/llmux-e2e\.yaml/);
});

test('os.environ/ in master_key: a missing variable stops startup and is named; a set one is used', async () => {
  const cfg = {
    model_list: [{ model_name: 'local', litellm_params: { model: 'openai/local', mock_response: 'env ok' } }],
    general_settings: { master_key: 'os.environ/SOME_MISSING_VAR' },
  };
  delete process.env.SOME_MISSING_VAR;
  const r = await runLlmux(['--config', '$CONFIG', '--port', '0', '--host', '127.0.0.1', '--num_workers', '1'], { config: cfg, timeoutMs: 5000 });
  assert.notEqual(r.code, 0, 'llmux must not start');
  assert.doesNotMatch(r.stdout, /listening/);
  assert.match(r.stderr, /SOME_MISSING_VAR/);
  const chk = await runLlmux(['--config', '$CONFIG', '--check'], { config: cfg });
  assert.equal(chk.code, 1);
  assert.match(chk.stderr, /SOME_MISSING_VAR/);

  const proxy = await startLlmux(cfg, { env: { SOME_MISSING_VAR: 'sk-from-env-8812' } });
  try {
    const ok = await request(proxy.baseURL, '/chat/completions', { key: 'sk-from-env-8812', body: chatBody('local') });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.choices[0].message.content, 'env ok');
    assert.equal((await request(proxy.baseURL, '/chat/completions', { key: 'os.environ/SOME_MISSING_VAR', body: chatBody('local') })).status, 401);
    assert.ok(!proxy.logs().includes('sk-from-env-8812'), 'the master key from the environment is not logged');
  } finally {
    await proxy.stop('SIGKILL');
  }
});
