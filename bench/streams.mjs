// Concurrency client: holds N streaming chat requests open at once against
// PORT and watches the server process PID (RSS from /proc/PID/status, CPU from
// /proc/PID/stat) before, during and after. Prints progress to stderr and one
// JSON line with the results to stdout.
//   node bench/streams.mjs PORT PID N [MODEL=gpt-4o] [BATCH=100] [BATCH_MS=10]
// A stream counts as an error if it fails to connect, answers non-200, or
// ends before "data: [DONE]".
import fs from 'node:fs';
import { Conn, buildRequest, chatBody, sleep } from './http.mjs';

const port = Number(process.argv[2]);
const pid = Number(process.argv[3]);
const n = Number(process.argv[4] || 10000);
const model = process.argv[5] || 'gpt-4o';
const batch = Number(process.argv[6] || 100);
const batchMs = Number(process.argv[7] || 10);
const req = buildRequest({ port, body: chatBody({ model, stream: true }) });

const hz = 100; // USER_HZ on Linux
function rssKb() {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
}
function hwmKb() {
    const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
}
function cpuSec() {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / hz;
}

const st = { connected: 0, streaming: 0, done: 0, events: 0, errors: 0, errorKinds: {} };
let minEvents = Infinity;
let maxEvents = 0;
const fail = (kind) => {
    st.errors++;
    st.errorKinds[kind] = (st.errorKinds[kind] || 0) + 1;
};

async function one() {
    const c = new Conn(port);
    try {
        await c.connect();
    } catch (e) {
        fail(`connect ${e.code || e.message}`);
        return;
    }
    st.connected++;
    let counted = false;
    try {
        const r = await c.request(req, {
            onEvent: () => {
                st.events++;
                if (!counted) {
                    counted = true;
                    st.streaming++;
                }
            },
        });
        if (r.status !== 200) {
            fail(`status ${r.status}`);
        } else if (!r.sawDone) {
            fail('no [DONE]');
        } else {
            st.done++;
            minEvents = Math.min(minEvents, r.events);
            maxEvents = Math.max(maxEvents, r.events);
        }
    } catch (e) {
        fail(`stream ${e.code || e.message}`);
    } finally {
        if (counted) {
            st.streaming--;
        }
        c.close();
    }
}

const idleRss = rssKb();
const cpu0 = cpuSec();
const t0 = Date.now();
let peakRss = idleRss;
let peakStreaming = 0;
let rssAtPeak = idleRss;

const ticker = setInterval(() => {
    const rss = rssKb();
    peakRss = Math.max(peakRss, rss);
    if (st.streaming > peakStreaming) {
        peakStreaming = st.streaming;
        rssAtPeak = rss;
    } else if (st.streaming === peakStreaming) {
        rssAtPeak = Math.max(rssAtPeak, rss);
    }
    process.stderr.write(`[streams] t=${((Date.now() - t0) / 1000).toFixed(1)}s connected=${st.connected} ` +
        `streaming=${st.streaming} done=${st.done} errors=${st.errors} events=${st.events} ` +
        `rss=${(rss / 1024).toFixed(1)}MiB\n`);
}, 1000);

const all = [];
for (let i = 0; i < n; i += batch) {
    for (let j = i; j < Math.min(n, i + batch); j++) {
        all.push(one());
    }
    await sleep(batchMs);
}
await Promise.all(all);
clearInterval(ticker);
const cpu1 = cpuSec();
await sleep(1000);
const after = rssKb();

console.log(JSON.stringify({
    streams: n, done: st.done, errors: st.errors, error_kinds: st.errorKinds,
    peak_concurrent: peakStreaming, events: st.events,
    events_per_stream_min: Number.isFinite(minEvents) ? minEvents : 0, events_per_stream_max: maxEvents,
    rss_idle_kb: idleRss, rss_peak_kb: peakRss, rss_at_peak_streams_kb: rssAtPeak,
    rss_after_kb: after, hwm_kb: hwmKb(),
    rss_per_stream_kb: (peakRss - idleRss) / n,
    cpu_s: cpu1 - cpu0, cpu_per_stream_ms: ((cpu1 - cpu0) / n) * 1000,
    wall_s: (Date.now() - t0) / 1000,
}));
