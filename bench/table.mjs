// Renders the results of bench/run.sh (key=value lines) as one markdown table
// plus notes. Ratios are llmux / nginx-proxy; "met" checks the project's bar.
//   node bench/table.mjs results.env
import fs from 'node:fs';

const v = {};
for (const line of fs.readFileSync(process.argv[2], 'utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) {
        v[line.slice(0, i)] = line.slice(i + 1);
    }
}
const num = (k) => Number(v[k]);
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '—');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? (a / b).toFixed(2) : '—');
const mib = (kb) => kb / 1024;
const yes = (ok) => (ok ? 'yes' : '**no**');

const rows = [];
const row = (metric, direct, nginx, llmux, r, bar = '', met = '') =>
    rows.push(`| ${metric} | ${direct} | ${nginx} | ${llmux} | ${r} | ${bar} | ${met} |`);

const ups = [['mock', 'llmux-mock'], ['static', 'nginx static']];
for (const [up, name] of ups) {
    const d = num(`rps/direct/${up}`);
    const n = num(`rps/nginx/${up}`);
    const l = num(`rps/llmux/${up}`);
    row(`Throughput, ${v.conns} conns, ${name} upstream (req/s)`, fmt(d), fmt(n), fmt(l), ratio(l, n),
        '≥ 0.8 × nginx', yes(l >= 0.8 * n));
}
for (const [up, name] of ups) {
    const n = num(`cpu/nginx/${up}`);
    const l = num(`cpu/llmux/${up}`);
    row(`Proxy CPU per request, ${name} upstream (µs)`, '—', fmt(n, 1), fmt(l, 1), ratio(l, n));
}
for (const [pre, where] of [['', 'proxy on its own core'], ['s', 'all on one core']]) {
    for (const [up, name] of ups) {
        for (const [q, bar] of [['p50', 15], ['p99', 100]]) {
            const d = num(`${q}${pre}/direct/${up}`);
            const n = num(`${q}${pre}/nginx/${up}`);
            const l = num(`${q}${pre}/llmux/${up}`);
            row(`Latency ${q}, 1 conn, ${name} upstream, ${where} (µs)`, fmt(d, 1), fmt(n, 1), fmt(l, 1),
                ratio(l, n));
            row(`&nbsp;&nbsp;added over direct (µs)`, '—', fmt(n - d, 1), fmt(l - d, 1), ratio(l - d, n - d),
                `≤ ${bar} µs`, yes(l - d <= bar));
        }
    }
}
for (const [q, bar] of [['50', 100], ['99', null]]) {
    const d = num(`ttfb${q}/direct`);
    const n = num(`ttfb${q}/nginx`);
    const l = num(`ttfb${q}/llmux`);
    row(`Streaming time to first event p${q} (µs)`, fmt(d, 1), fmt(n, 1), fmt(l, 1), ratio(l, n));
    row(`&nbsp;&nbsp;added over direct (µs)`, '—', fmt(n - d, 1), fmt(l - d, 1), ratio(l - d, n - d),
        bar ? `≤ ${bar} µs` : '', bar ? yes(l - d <= bar) : '');
}
{
    const n = mib(num('rss_idle/nginx'));
    const l = mib(num('rss_idle/llmux'));
    row('RSS idle (MiB)', '—', fmt(n, 1), fmt(l, 1), ratio(l, n), '≤ 12 MiB', yes(l <= 12));
}
{
    const n = mib(num('rss_load/nginx'));
    const l = mib(num('rss_load/llmux'));
    row('RSS after load, VmRSS (MiB)', '—', fmt(n, 1), fmt(l, 1), ratio(l, n));
}
{
    const n = mib(num('hwm/nginx'));
    const l = mib(num('hwm/llmux'));
    row('Peak RSS, VmHWM (MiB)', '—', fmt(n, 1), fmt(l, 1), ratio(l, n));
}
{
    const n = num('ready/nginx');
    const l = num('ready/llmux');
    row(`Start to ready, median of ${v.ready_samples} (ms)`, '—', fmt(n, 1), fmt(l, 1), ratio(l, n),
        '≤ 100 ms', yes(l <= 100));
}
row('Errors (non-2xx, socket, stream) in all runs', v['errors/direct'], v['errors/nginx'], v['errors/llmux'],
    '', '0', yes(num('errors/llmux') === 0));

const out = [];
out.push(`# llmux bench — ${v.date}, commit ${v.commit}`);
out.push('');
out.push('| metric | direct | nginx proxy | llmux | llmux / nginx | bar | met |');
out.push('|---|---:|---:|---:|---:|---|---|');
out.push(...rows);
out.push('');
out.push('Notes');
out.push('');
out.push(`- Machine: ${v.ncpu} × ${v.cpu}, Linux ${v.kernel}; load average ${v.load_before} before, ` +
    `${v.load_after} after (anything else running shows up here).`);
out.push(`- Pinning (taskset): nginx proxy and llmux on core ${v.core_proxy} (one worker each); ` +
    `llmux-mock, the nginx static upstream, wrk and the node clients on core ${v.core_load}; ` +
    `bench processes at nice ${v.nice}.`);
out.push(`- Each figure is the median of ${v.rounds} interleaved rounds (direct, nginx, llmux in turn) of ` +
    `${v.duration} s after a ${v.warmup} s warm-up per target; wrk -t1, ${v.conns} connections for ` +
    'throughput and 1 connection for latency (wrk --latency p50/p99). Run time ' +
    `${v.elapsed} s.`);
out.push('- "all on one core": the latency rows again with the proxies moved (taskset -p) onto the ' +
    'client/upstream core, so a proxied request pays no cross-core wake-ups and "added over direct" ' +
    'is the proxy\'s own work on the critical path; on this VM a cross-core wake-up costs tens of µs.');
out.push('- Request: POST /v1/chat/completions, ~1 KB chat body (bench/request.json), ' +
    '`Authorization: Bearer sk-bench`; the answer is ~320 bytes of JSON from either upstream.');
out.push('- "direct" is the upstream hit without a proxy; "added over direct" subtracts it. ' +
    'The nginx proxy uses an upstream block with keepalive 64, proxy_http_version 1.1, ' +
    '`Connection ""` (proxy_buffering off for the streaming row only).');
out.push('- llmux pipeline in this run: master-key auth, JSON parse + model rewrite, router, ' +
    'OpenAI provider, libcurl upstream; log_level WARNING so per-request access logs are off. ' +
    'Virtual keys, rate limits and spend logging are measured separately by bench/paths.sh (bench/results/latest-paths.md).');
out.push(`- Streaming: time from writing the request to the first SSE \`data:\` event, ` +
    `${v.ttfb_n} sequential streams per round on one keep-alive connection (node raw-socket client); ` +
    'the upstream is llmux-mock for all three (nginx cannot stream).');
out.push('- Proxy CPU per request: utime+stime of the proxy (nginx master+worker) during the ' +
    'measured throughput runs / requests served (10 ms tick resolution).');
out.push('- RSS: VmRSS/VmHWM from /proc (nginx: master + worker summed); idle is after start, ' +
    'before any request; "after load" is after every run above.');
out.push('- Start to ready: from spawn to the first 200 on GET /health (polled every ~1 ms); ' +
    'nginx: its proxy config with a /health location.');
out.push('');
out.push('<details><summary>Per-round values</summary>');
out.push('');
for (const k of Object.keys(v).filter((k) => k.startsWith('rounds/')).sort()) {
    out.push(`- ${k.slice(7)}: ${v[k]}`);
}
out.push('');
out.push('</details>');
console.log(out.join('\n'));
