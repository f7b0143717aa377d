// A minimal HTTP/1.1 client on raw `net` sockets for the bench scripts.
//
// Why not node's http module: its per-request overhead (agents, header
// objects, streams) is larger and noisier than the microseconds we measure,
// and the concurrency test holds 10,000 sockets where every byte of client
// memory counts. This client does one request at a time per connection
// (keep-alive), understands Content-Length and chunked bodies, and counts
// server-sent events ("data:" lines) as the decoded body streams in.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

// The ~1 KB chat request shared with chat.lua, with model/stream overridden.
export function chatBody({ model = 'gpt-4o', stream = false } = {}) {
    const body = JSON.parse(fs.readFileSync(path.join(here, 'request.json'), 'utf8'));
    body.model = model;
    if (stream) {
        body.stream = true;
    }
    return JSON.stringify(body);
}

export function buildRequest({ host = '127.0.0.1', port, path: p = '/v1/chat/completions',
    method = 'POST', body = '', headers = {} }) {
    const b = Buffer.from(body);
    let head = `${method} ${p} HTTP/1.1\r\nHost: ${host}:${port}\r\n`;
    const h = { 'Content-Type': 'application/json', Authorization: 'Bearer sk-bench', ...headers };
    for (const [k, v] of Object.entries(h)) {
        head += `${k}: ${v}\r\n`;
    }
    if (method !== 'GET') {
        head += `Content-Length: ${b.length}\r\n`;
    }
    return Buffer.concat([Buffer.from(head + '\r\n'), b]);
}

const DATA = Buffer.from('data:');

// Response parser for one connection: feed() bytes, it calls back per response.
class Parser {
    constructor() {
        this.reset();
    }

    reset() {
        this.state = 'head';
        this.head = Buffer.alloc(0);
        this.status = 0;
        this.left = 0;      // body bytes left (content-length) or in the current chunk
        this.chunked = false;
        this.chunkLine = '';
        this.events = 0;
        this.bodyBytes = 0;
        this.lineStart = true; // next decoded byte starts a line
        this.partial = 0;     // bytes of "data:" matched so far at a line start
        this.sawDone = false;
        this.tail = '';       // last bytes of decoded body, to spot [DONE] across chunks
    }

    // Decoded body bytes: count "data:" at line starts.
    body(buf, cb) {
        this.bodyBytes += buf.length;
        let before = this.events;
        for (let i = 0; i < buf.length; i++) {
            const ch = buf[i];
            if (this.lineStart || this.partial > 0) {
                if (ch === DATA[this.partial]) {
                    this.partial++;
                    this.lineStart = false;
                    if (this.partial === DATA.length) {
                        this.events++;
                        this.partial = 0;
                    }
                    continue;
                }
                this.partial = 0;
            }
            this.lineStart = ch === 10;
        }
        const s = this.tail + buf.toString('latin1');
        if (s.includes('[DONE]')) {
            this.sawDone = true;
        }
        this.tail = s.slice(-8);
        if (this.events > before && cb.onEvent) {
            cb.onEvent(this.events);
        }
    }

    // Returns leftover bytes after a complete response, or null if more is needed.
    feed(buf, cb) {
        let i = 0;
        while (i <= buf.length) {
            if (this.state === 'head') {
                this.head = Buffer.concat([this.head, buf.subarray(i)]);
                const end = this.head.indexOf('\r\n\r\n');
                if (end < 0) {
                    return null;
                }
                const text = this.head.subarray(0, end).toString('latin1');
                const rest = this.head.subarray(end + 4);
                const lines = text.split('\r\n');
                this.status = Number(lines[0].split(' ')[1]);
                let cl = 0;
                for (const l of lines.slice(1)) {
                    const c = l.indexOf(':');
                    const k = l.slice(0, c).trim().toLowerCase();
                    const v = l.slice(c + 1).trim();
                    if (k === 'content-length') {
                        cl = Number(v);
                    } else if (k === 'transfer-encoding' && /chunked/i.test(v)) {
                        this.chunked = true;
                    }
                }
                if (cb.onHead) {
                    cb.onHead(this.status);
                }
                if (this.chunked) {
                    this.state = 'chunk-size';
                } else {
                    this.state = 'fixed';
                    this.left = cl;
                }
                buf = rest;
                i = 0;
                if (this.state === 'fixed' && this.left === 0) {
                    return buf;
                }
                continue;
            }
            if (i >= buf.length) {
                return null;
            }
            if (this.state === 'fixed') {
                const n = Math.min(this.left, buf.length - i);
                this.body(buf.subarray(i, i + n), cb);
                this.left -= n;
                i += n;
                if (this.left === 0) {
                    return buf.subarray(i);
                }
                continue;
            }
            if (this.state === 'chunk-size' || this.state === 'trailer') {
                const nl = buf.indexOf(10, i);
                if (nl < 0) {
                    this.chunkLine += buf.subarray(i).toString('latin1');
                    return null;
                }
                const line = (this.chunkLine + buf.subarray(i, nl).toString('latin1')).trim();
                this.chunkLine = '';
                i = nl + 1;
                if (this.state === 'trailer') {
                    if (line === '') {
                        return buf.subarray(i);
                    }
                    continue;
                }
                this.left = parseInt(line, 16);
                this.state = this.left === 0 ? 'trailer' : 'chunk-data';
                continue;
            }
            if (this.state === 'chunk-data') {
                const n = Math.min(this.left, buf.length - i);
                this.body(buf.subarray(i, i + n), cb);
                this.left -= n;
                i += n;
                if (this.left === 0) {
                    this.state = 'chunk-crlf';
                }
                continue;
            }
            if (this.state === 'chunk-crlf') {
                const nl = buf.indexOf(10, i);
                if (nl < 0) {
                    return null;
                }
                i = nl + 1;
                this.state = 'chunk-size';
                continue;
            }
        }
        return null;
    }
}

// One keep-alive connection doing one request at a time.
export class Conn {
    constructor(port, host = '127.0.0.1') {
        this.port = port;
        this.host = host;
        this.sock = null;
        this.parser = new Parser();
        this.pending = null;
        this.closed = true;
    }

    connect() {
        return new Promise((resolve, reject) => {
            const s = net.connect({ port: this.port, host: this.host, noDelay: true });
            this.sock = s;
            this.closed = false;
            s.once('connect', () => resolve());
            s.on('data', (d) => this.onData(d));
            s.on('error', (e) => {
                this.closed = true;
                if (this.pending) {
                    const p = this.pending;
                    this.pending = null;
                    p.reject(e);
                } else {
                    reject(e);
                }
            });
            s.on('close', () => {
                this.closed = true;
                if (this.pending) {
                    const p = this.pending;
                    this.pending = null;
                    p.reject(new Error('connection closed mid-response'));
                }
            });
        });
    }

    onData(d) {
        if (!this.pending) {
            return;
        }
        const p = this.pending;
        if (p.firstByteNs === 0n) {
            p.firstByteNs = process.hrtime.bigint();
        }
        const left = this.parser.feed(d, p.cb);
        if (left !== null) {
            const pr = this.parser;
            this.pending = null;
            this.parser = new Parser();
            p.resolve({ status: pr.status, events: pr.events, bodyBytes: pr.bodyBytes,
                sawDone: pr.sawDone, startNs: p.startNs, firstByteNs: p.firstByteNs,
                firstEventNs: p.firstEventNs, endNs: process.hrtime.bigint() });
        }
    }

    // Send one request; resolves with status, counts and timestamps (hrtime ns).
    // cb.onEvent(n) fires as SSE events arrive; cb.onHead(status) after headers.
    async request(bytes, cb = {}) {
        if (this.closed) {
            await this.connect();
        }
        return new Promise((resolve, reject) => {
            const p = { resolve, reject, cb: {}, startNs: 0n, firstByteNs: 0n, firstEventNs: 0n };
            p.cb = {
                onHead: cb.onHead,
                onEvent: (n) => {
                    if (p.firstEventNs === 0n) {
                        p.firstEventNs = process.hrtime.bigint();
                    }
                    if (cb.onEvent) {
                        cb.onEvent(n);
                    }
                },
            };
            this.pending = p;
            p.startNs = process.hrtime.bigint();
            this.sock.write(bytes);
        });
    }

    // Drop the connection now (a client disconnect), failing any pending request quietly.
    abort() {
        if (this.pending) {
            this.pending.reject = () => {};
            this.pending = null;
        }
        if (this.sock) {
            this.sock.destroy();
        }
        this.closed = true;
        this.parser = new Parser();
    }

    close() {
        if (this.sock) {
            this.sock.end();
            this.sock.destroy();
        }
        this.closed = true;
    }
}

export function percentile(sorted, q) {
    if (sorted.length === 0) {
        return NaN;
    }
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return sorted[i];
}

export function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}
