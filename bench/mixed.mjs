// Load generator for the soak and the profile: CONC workers, each looping over
// requests drawn from a mix, for SECONDS or until REQUESTS have been sent.
// Prints progress to stderr every 10 s and one JSON line of outcome counts.
//   node bench/mixed.mjs PORT MIX CONC (--seconds S | --requests N)
// MIX:
//   soak   plain and streamed answers, slow streams, upstream 500 and 429,
//          upstream resets mid-stream, client disconnects mid-stream, bad keys
//   plain  non-streaming chat only        stream  streaming chat only
// The deployments (gpt-4o-slow, gpt-4o-500, ...) are in lib.sh's llmux config.
import { Conn, buildRequest, chatBody, sleep } from './http.mjs';

const port = Number(process.argv[2]);
const mixName = process.argv[3] || 'soak';
const conc = Number(process.argv[4] || 16);
const flag = process.argv[5];
const limit = Number(process.argv[6]);
const seconds = flag === '--seconds' ? limit : Infinity;
const maxRequests = flag === '--requests' ? limit : Infinity;

const req = (model, stream, headers = {}) => buildRequest({ port, body: chatBody({ model, stream }), headers });

// [weight, name, request bytes, expectation]
const kinds = {
    plain: [[1, 'plain', req('gpt-4o', false), 'ok']],
    stream: [[1, 'stream', req('gpt-4o', true), 'ok']],
    soak: [
        [35, 'plain', req('gpt-4o', false), 'ok'],
        [20, 'stream', req('gpt-4o', true), 'ok'],
        [10, 'slow-stream', req('gpt-4o-slow', true), 'ok'],
        [8, 'upstream-500', req('gpt-4o-500', false), 'error'],
        [7, 'upstream-429', req('gpt-4o-429', true), 'error'],
        [5, 'upstream-reset', req('gpt-4o-reset', true), 'any'],
        [10, 'client-disconnect', req('gpt-4o-slow', true), 'abort'],
        [3, 'bad-key', req('gpt-4o', false, { Authorization: 'Bearer sk-wrong' }), 'error'],
        [2, 'unknown-model', req('no-such-model', false), 'error'],
    ],
}[mixName];
if (!kinds) {
    throw new Error(`unknown mix ${mixName}`);
}
const total = kinds.reduce((a, k) => a + k[0], 0);
function pick() {
    let x = Math.random() * total;
    for (const k of kinds) {
        x -= k[0];
        if (x < 0) {
            return k;
        }
    }
    return kinds[kinds.length - 1];
}

const counts = {};
const bump = (k) => {
    counts[k] = (counts[k] || 0) + 1;
};
let sent = 0;
let unexpected = 0;
const t0 = Date.now();
const deadline = t0 + seconds * 1000;

async function worker() {
    let c = new Conn(port);
    while (Date.now() < deadline && sent < maxRequests) {
        sent++;
        const [, name, bytes, expect] = pick();
        try {
            if (expect === 'abort') {
                // Disconnect after 1-3 events, while the upstream is still streaming.
                const stopAt = 1 + Math.floor(Math.random() * 3);
                await new Promise((resolve, reject) => {
                    c.request(bytes, {
                        onEvent: (n) => {
                            if (n >= stopAt) {
                                c.abort();
                                resolve();
                            }
                        },
                    }).then(resolve, reject);
                });
                c = new Conn(port);
                bump(`${name}`);
                continue;
            }
            const r = await c.request(bytes);
            const ok = r.status === 200 && (!bytes.includes('"stream":true') || r.sawDone);
            if (expect === 'ok' && !ok) {
                unexpected++;
                bump(`${name} unexpected status ${r.status}${r.sawDone ? '' : ' (no [DONE])'}`);
            } else if (expect === 'error' && r.status === 200) {
                unexpected++;
                bump(`${name} unexpected 200`);
            } else {
                bump(`${name} ${r.status}`);
            }
        } catch (e) {
            c.abort();
            c = new Conn(port);
            if (expect === 'any') {
                bump(`${name} closed`);
            } else {
                unexpected++;
                bump(`${name} error ${e.code || e.message}`);
            }
        }
    }
    c.close();
}

const ticker = setInterval(() => {
    process.stderr.write(`[mixed] t=${((Date.now() - t0) / 1000).toFixed(0)}s sent=${sent} unexpected=${unexpected}\n`);
}, 10000);
await Promise.all(Array.from({ length: conc }, () => worker()));
clearInterval(ticker);
await sleep(10);
console.log(JSON.stringify({ sent, unexpected, seconds: (Date.now() - t0) / 1000, counts }));
