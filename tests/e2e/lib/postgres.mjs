// A throw-away PostgreSQL server for end-to-end tests.
//
//   const pg = await startPostgres();   // initdb + start on 127.0.0.1, a free port
//   pg.url                              // postgresql://llmux:PASSWORD@127.0.0.1:PORT/postgres
//   await pg.createDatabase('x')        // → the URL of a new database on the server
//   await pg.kill();  await pg.start(); // crash (immediate stop) and restart, same port and data
//   await pg.stop();                    // clean stop (fast); start() again works too
//   await pg.destroy();                 // stop and delete the data dir (also done at exit)
//
// PostgreSQL refuses to run as root: when we are root, the data dir belongs to
// `nobody` and the server binaries run through setpriv as that user. The
// server listens on loopback only, with password (scram) auth for TCP.

import { execFile, execFileSync } from 'node:child_process';
import { chownSync, chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

function pgBin() {
  if (process.env.PGBIN) return process.env.PGBIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin/initdb'))) : [];
  if (!versions.length) throw new Error('PostgreSQL server binaries not found (apt-get install postgresql, or set PGBIN)');
  versions.sort((a, b) => Number(b) - Number(a));
  return path.join(root, versions[0], 'bin');
}

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

const live = new Set();
process.on('exit', () => {
  for (const pg of live) pg.destroySync();
});

export async function startPostgres() {
  const bin = pgBin();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'llmux-pg-'));
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'log');
  const root = process.getuid() === 0;
  // [cmd, args] for a server binary, as the unprivileged user when we are root.
  const as = (prog, args) => (root
    ? ['setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', path.join(bin, prog), ...args]]
    : [path.join(bin, prog), args]);
  chmodSync(dir, 0o755);
  if (root) chownSync(dir, 65534, 65534);

  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const pwfile = path.join(dir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (root) chownSync(pwfile, 65534, 65534);
  const port = await freePort();
  try {
    const [cmd, args] = as('initdb', ['-D', data, '-U', 'llmux', '-E', 'UTF8', '--no-locale',
      '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pwfile}`]);
    await run(cmd, args, { cwd: dir });
  } finally {
    rmSync(pwfile, { force: true });
  }
  appendFileSync(path.join(data, 'postgresql.conf'), [
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `unix_socket_directories = '${dir}'`,
    'fsync = off',
    'full_page_writes = off',
    'shared_buffers = 16MB',
    'max_connections = 50',
    '',
  ].join('\n'));

  const ctl = async (...args) => {
    const [cmd, a] = as('pg_ctl', ['-D', data, ...args]);
    await run(cmd, a, { cwd: dir });
  };
  const running = () => existsSync(path.join(data, 'postmaster.pid'));
  let destroyed = false;

  const pg = {
    url: `postgresql://llmux:${password}@127.0.0.1:${port}/postgres`,
    port,
    password,
    dir,
    // Start again on the same data dir and port (after stop() or kill()).
    start: () => ctl('-l', log, '-w', 'start'),
    // Clean shutdown: sessions are told and closed.
    stop: () => ctl('-m', 'fast', '-w', 'stop'),
    // Like a crash: every connection drops at once.
    kill: () => ctl('-m', 'immediate', '-w', 'stop'),
    // Run SQL as the superuser (through the local socket); returns stdout.
    psql: async (sql, db = 'postgres') => {
      const { stdout } = await run(path.join(bin, 'psql'),
        ['-h', dir, '-p', String(port), '-U', 'llmux', '-d', db, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
      return stdout.trim();
    },
    // A new empty database on this server; resolves to its URL.
    createDatabase: async (name) => {
      await pg.psql(`CREATE DATABASE ${name}`);
      return `postgresql://llmux:${password}@127.0.0.1:${port}/${name}`;
    },
    destroy: async () => {
      if (destroyed) return;
      if (running()) await ctl('-m', 'immediate', '-w', 'stop').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
      destroyed = true;
      live.delete(pg);
    },
    destroySync: () => {
      if (destroyed) return;
      if (running()) {
        const [cmd, a] = as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
        try { execFileSync(cmd, a, { cwd: dir, stdio: 'ignore' }); } catch { /* already down */ }
      }
      rmSync(dir, { recursive: true, force: true });
      destroyed = true;
    },
  };
  live.add(pg);
  try {
    await pg.start();
  } catch (e) {
    await pg.destroy();
    throw e;
  }
  return pg;
}
