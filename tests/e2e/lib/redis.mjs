// A throwaway redis-server for end-to-end tests: loopback only, a free port,
// a temp dir, no persistence (no RDB snapshots, no AOF).
//
//   const redis = await startRedis();   // {host, port, stop(), kill(), start(), cmd()}
//   await redis.kill();                 // SIGKILL: clients see the link drop
//   await redis.start();                // the same port again, empty
//   redis.pause(); redis.resume();      // SIGSTOP / SIGCONT: a hung server
//   await redis.cmd('GET', 'k');        // a tiny RESP client for assertions
//
// The server is killed when the test process exits.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const REDIS_BIN = process.env.REDIS_SERVER_BIN || 'redis-server';
const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }
});

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = String(a);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

// Parse one RESP reply from buf at offset; returns [value, nextOffset] or null if incomplete.
function parseReply(buf, off = 0) {
  const eol = buf.indexOf('\r\n', off);
  if (eol < 0) return null;
  const type = buf[off];
  const line = buf.slice(off + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return [line, next];
    case '-': return [new Error(line), next];
    case ':': return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.slice(next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const arr = [];
      let o = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, o);
        if (!r) return null;
        arr.push(r[0]);
        o = r[1];
      }
      return [arr, o];
    }
    default: throw new Error(`bad RESP type ${type}`);
  }
}

// One command over a fresh connection.
export function redisCmd(port, ...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    sock.setEncoding('latin1');
    sock.once('error', reject);
    sock.on('data', (d) => {
      buf += d;
      const r = parseReply(buf);
      if (r) {
        sock.destroy();
        if (r[0] instanceof Error) reject(r[0]); else resolve(r[0]);
      }
    });
    sock.write(encode(args));
  });
}

// AUTH then one command over a fresh connection; resolves to the command's reply.
function redisCmdAuth(port, password, ...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    sock.setEncoding('latin1');
    sock.once('error', reject);
    sock.on('data', (d) => {
      buf += d;
      const first = parseReply(buf);
      if (!first) return;
      if (first[0] instanceof Error) { sock.destroy(); reject(first[0]); return; }
      const second = parseReply(buf, first[1]);
      if (second) {
        sock.destroy();
        if (second[0] instanceof Error) reject(second[0]); else resolve(second[0]);
      }
    });
    sock.write(encode(['AUTH', password]) + encode(args));
  });
}

async function waitListening(port, proc, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode}) before listening`);
    try {
      const pong = await redisCmd(port, 'PING').catch((e) => (/NOAUTH/.test(e.message) ? 'PONG' : Promise.reject(e)));
      if (pong === 'PONG') return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startRedis({ password } = {}) {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'llmux-redis-'));
  let proc = null;
  const exited = (p) => p.exitCode !== null || p.signalCode !== null;
  const waitExit = (p) => (exited(p) ? Promise.resolve() : new Promise((r) => p.once('exit', r)));

  const api = {
    host: '127.0.0.1',
    port,
    dir,
    async start() {
      if (proc && !exited(proc)) return;
      proc = spawn(REDIS_BIN, [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
        '--save', '', '--appendonly', 'no', '--protected-mode', 'no',
        ...(password ? ['--requirepass', password] : []),
      ], { stdio: ['ignore', 'ignore', 'pipe'] });
      live.add(proc);
      const p = proc;
      p.once('exit', () => live.delete(p));
      await waitListening(port, p);
    },
    // SIGKILL, as a crash: no shutdown, clients see their connections drop.
    async kill() {
      if (!proc || exited(proc)) return;
      const p = proc;
      p.kill('SIGKILL');
      await waitExit(p);
    },
    // SIGSTOP / SIGCONT: a hung server (connections stay open, nothing answers).
    pause() { if (proc && !exited(proc)) proc.kill('SIGSTOP'); },
    resume() { if (proc && !exited(proc)) proc.kill('SIGCONT'); },
    async stop() {
      if (proc && !exited(proc)) {
        const p = proc;
        p.kill('SIGCONT');
        p.kill('SIGTERM');
        await waitExit(p);
      }
      rmSync(dir, { recursive: true, force: true });
    },
    cmd: (...args) => (password ? redisCmdAuth(port, password, ...args) : redisCmd(port, ...args)),
  };
  await api.start();
  return api;
}
