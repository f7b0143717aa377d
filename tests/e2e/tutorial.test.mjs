// The tutorial's config blocks and calls, as written: the YAML is the
// tutorial's text, and the only thing the tests add is where the providers
// live — OPENAI_API_BASE / ANTHROPIC_API_BASE point at llmux-mock, as a user
// would point LiteLLM at a private endpoint — plus a model_list where a
// section's block names models without defining them.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';

import { startLlmux, startMock, cleanupTempDirs, request, waitFor, LLMUX_BIN } from './lib/harness.mjs';
import { costTrackingConfig, tutorialEnv } from './lib/tutorial.mjs';

let mock;
before(async () => { mock = await startMock(); });
after(async () => { await mock?.stop(); await cleanupTempDirs(); });

const env = () => tutorialEnv(mock);

function runCli(args, cwd) {
  return new Promise((resolve) => {
    const p = spawn(LLMUX_BIN, args, { cwd, env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

// ## Configuration File
const CONFIGURATION_FILE = `# config.yaml
model_list:
  - model_name: gpt-4
    litellm_params:
      model: gpt-4
      api_key: os.environ/OPENAI_API_KEY

  - model_name: claude-3
    litellm_params:
      model: claude-3-opus-20240229
      api_key: os.environ/ANTHROPIC_API_KEY

  - model_name: gpt-3.5-turbo
    litellm_params:
      model: gpt-3.5-turbo
      api_key: os.environ/OPENAI_API_KEY

general_settings:
  database_url: "sqlite:///litellm.db"  # For cost tracking
  master_key: "sk-1234"  # Master API key for admin access

# Optional: Rate limiting
rate_limit_config:
  redis_host: localhost
  redis_port: 6379
`;

test('Configuration File + Using the Proxy: OpenAI and Anthropic models behind one endpoint', async () => {
  const px = await startLlmux(CONFIGURATION_FILE, { env: env() });
  try {
    assert.ok(existsSync(path.join(px.dir, 'litellm.db')), 'sqlite:///litellm.db is created in the working directory');
    const client = new OpenAI({ apiKey: 'sk-1234', baseURL: px.baseURL, maxRetries: 0 });

    const gpt = await client.chat.completions.create({ model: 'gpt-4', messages: [{ role: 'user', content: 'Hello!' }] }).withResponse();
    assert.equal(gpt.data.object, 'chat.completion');
    assert.equal(gpt.data.model, 'gpt-4');
    let last = await mock.last();
    assert.match(last.path, /\/v1\/chat\/completions$/);
    assert.equal(last.headers.authorization, 'Bearer sk-your-key');
    // gpt-4 is priced: the cost header is there and non-zero.
    assert.ok(Number(gpt.response.headers.get('x-litellm-response-cost')) > 0);

    const claude = await client.chat.completions.create({ model: 'claude-3', messages: [{ role: 'user', content: 'Hello!' }] });
    assert.equal(claude.object, 'chat.completion');
    assert.equal(typeof claude.choices[0].message.content, 'string');
    last = await mock.last();
    assert.match(last.path, /\/v1\/messages$/);
    assert.equal(last.headers['x-api-key'], 'sk-ant-your-key');
    assert.equal(JSON.parse(last.body).model, 'claude-3-opus-20240229');

    // The proxy key is required.
    const bad = new OpenAI({ apiKey: 'your-proxy-key', baseURL: px.baseURL, maxRetries: 0 });
    await assert.rejects(bad.chat.completions.create({ model: 'gpt-4', messages: [{ role: 'user', content: 'Hello!' }] }), (e) => e.status === 401);
  } finally {
    assert.equal(await px.stop(), 0);
  }
});

// ## Cost Tracking: costTrackingConfig() in lib/tutorial.mjs.

test('Cost Tracking + API Endpoints: /user/spend equals the billed costs; /global/spend; /user/reset_budget', async () => {
  const px = await startLlmux(costTrackingConfig(), { env: env() });
  try {
    const gen = await runCli(['--config', 'config.yaml', '--generate_key', '--user_id', 'team_a'], px.dir);
    assert.equal(gen.code, 0, gen.stderr);
    const key = gen.stdout.trim();
    assert.match(key, /^sk-/);

    const client = new OpenAI({ apiKey: key, baseURL: px.baseURL, maxRetries: 0 });
    let billed = 0;
    for (const model of ['gpt-4', 'gpt-3.5-turbo', 'claude-3', 'gpt-4']) {
      const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello!' }] }).withResponse();
      const cost = Number(r.response.headers.get('x-litellm-response-cost'));
      assert.ok(cost > 0, `${model} is billed`);
      billed += cost;
    }
    // A stream is billed too, from the usage the upstream reports.
    const s = await client.chat.completions.create({ model: 'gpt-4', messages: [{ role: 'user', content: 'Hello!' }], stream: true });
    for await (const _ of s) { /* drain */ }

    // # Get user spending
    const spendOf = async () => {
      const r = await request(px.baseURL, '/user/spend', { method: 'GET', key });
      assert.equal(r.status, 200, r.text);
      return r.json;
    };
    let spend = await spendOf();
    assert.equal(spend.user_id, 'team_a');
    assert.equal(spend.max_budget, 200);
    assert.ok(spend.budget_reset_at, 'budget_duration 30d sets budget_reset_at');
    // Four non-streamed calls plus one stream (priced as the first gpt-4 call or more).
    assert.ok(spend.total_spend > billed, `${spend.total_spend} > ${billed}`);
    // The rows reach the store within the ledger's batch interval (~100 ms).
    let logs;
    await waitFor(async () => {
      logs = await request(px.baseURL, '/spend/logs?user_id=team_a', { method: 'GET' });
      return logs.status === 200 && logs.json.length === 5;
    }, { what: '5 spend rows' });
    const sum = logs.json.reduce((a, row) => a + row.spend, 0);
    assert.ok(Math.abs(sum - spend.total_spend) < 1e-9, `rows ${sum} == total ${spend.total_spend}`);

    // # Health check / # List available models
    const health = await fetch(`${px.baseURL}/health`);
    assert.equal(health.status, 200);
    await health.arrayBuffer();
    const models = await request(px.baseURL, '/v1/models', { method: 'GET', key });
    assert.deepEqual(models.json.data.map((m) => m.id).sort(), ['claude-3', 'gpt-3.5-turbo', 'gpt-4']);

    // # Admin endpoints: /global/spend, then # Reset budget
    const global = await request(px.baseURL, '/global/spend', { method: 'GET' });
    assert.equal(global.status, 200, global.text);
    assert.ok(Math.abs(global.json.spend - spend.total_spend) < 1e-9, global.text);
    const reset = await request(px.baseURL, '/user/reset_budget', { body: { user_id: 'team_a' } });
    assert.equal(reset.status, 200, reset.text);
    await waitFor(async () => (await spendOf()).total_spend === 0, { what: 'spend reset to 0' });
    spend = await spendOf();
    assert.equal(spend.total_spend, 0);
  } finally {
    assert.equal(await px.stop(), 0);
  }
});
