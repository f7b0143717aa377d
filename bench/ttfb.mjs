// Streaming time to first byte: sequential streaming chat requests on one
// keep-alive connection; for each, the time from writing the request to the
// arrival of the first SSE "data:" event (and, separately, of the first
// response byte). Prints one JSON line: medians/p99 in microseconds.
//   node bench/ttfb.mjs PORT [N=2000] [WARMUP=200] [MODEL=gpt-4o]
import { Conn, buildRequest, chatBody, percentile } from './http.mjs';

const port = Number(process.argv[2]);
const n = Number(process.argv[3] || 2000);
const warmup = Number(process.argv[4] || 200);
const model = process.argv[5] || 'gpt-4o';
const req = buildRequest({ port, body: chatBody({ model, stream: true }) });

const conn = new Conn(port);
const ev = [];
const fb = [];
let errors = 0;
for (let i = 0; i < n + warmup; i++) {
    try {
        const r = await conn.request(req);
        if (r.status !== 200 || r.events === 0 || !r.sawDone) {
            errors++;
            continue;
        }
        if (i >= warmup) {
            ev.push(Number(r.firstEventNs - r.startNs) / 1000);
            fb.push(Number(r.firstByteNs - r.startNs) / 1000);
        }
    } catch (e) {
        errors++;
        conn.abort();
    }
}
conn.close();
ev.sort((a, b) => a - b);
fb.sort((a, b) => a - b);
console.log(JSON.stringify({
    n: ev.length, errors,
    event_p50_us: percentile(ev, 0.5), event_p99_us: percentile(ev, 0.99),
    byte_p50_us: percentile(fb, 0.5), byte_p99_us: percentile(fb, 0.99),
}));
