// Start-to-ready: spawn a server SAMPLES times and measure the time from
// spawn to the first 200 answer to GET /health on PORT (polled every ~1 ms
// with a fresh connection). The server is stopped with SIGTERM between
// samples. Prints one JSON line: median, min, max in milliseconds.
//   node bench/ready.mjs PORT SAMPLES -- CMD ARGS...
// Run it pinned (taskset): the server inherits the affinity.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { percentile, sleep } from './http.mjs';

const port = Number(process.argv[2]);
const samples = Number(process.argv[3] || 20);
const cmd = process.argv.slice(process.argv.indexOf('--') + 1);

function probe() {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        let buf = '';
        const done = (ok) => {
            s.destroy();
            resolve(ok);
        };
        s.on('connect', () => s.write(`GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
        s.on('data', (d) => {
            buf += d.toString('latin1');
            if (buf.includes('\r\n')) {
                done(/^HTTP\/1\.[01] 200/.test(buf));
            }
        });
        s.on('error', () => done(false));
        s.on('close', () => done(/^HTTP\/1\.[01] 200/.test(buf)));
    });
}

const times = [];
let failures = 0;
for (let i = 0; i < samples; i++) {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd[0], cmd.slice(1), { stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    let ok = false;
    const deadline = t0 + 10_000_000_000n;
    while (process.hrtime.bigint() < deadline) {
        if (await probe()) {
            ok = true;
            break;
        }
        await sleep(1);
    }
    const t1 = process.hrtime.bigint();
    if (ok) {
        times.push(Number(t1 - t0) / 1e6);
    } else {
        failures++;
    }
    child.kill('SIGTERM');
    await exited;
    await sleep(20);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ samples: times.length, failures, median_ms: percentile(times, 0.5),
    min_ms: times[0], max_ms: times[times.length - 1] }));
