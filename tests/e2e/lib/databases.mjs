// Empty databases for end-to-end tests that run on SQLite and on PostgreSQL
// (when tests/e2e/lib/postgres.mjs can start a server).
//
//   for (const backend of await databaseBackends()) {
//     const db = await backend.open();  // {url, rows(sql), exec(sql), dir (SQLite only), close()}
//   }
//
// rows() returns the result rows as objects (through sqlite3 -json or psql's json_agg).

import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export async function databaseBackends() {
  let startPostgres = null;
  try {
    ({ startPostgres } = await import('./postgres.mjs'));
  } catch { /* not available: SQLite only */ }
  const backends = [
    {
      name: 'SQLite',
      async open() {
        const dir = await mkdtemp(path.join(os.tmpdir(), 'llmux-db-'));
        const file = path.join(dir, 'llmux.db');
        const run = (q) => execFileSync('sqlite3', ['-json', file, q], { encoding: 'utf8' }).trim();
        return {
          url: `sqlite:///${file}`,
          dir,
          rows: (q) => { const out = run(q); return out ? JSON.parse(out) : []; },
          exec: (q) => { run(q); },
          close: () => rm(dir, { recursive: true, force: true }),
        };
      },
    },
  ];
  if (startPostgres) {
    backends.push({
      name: 'PostgreSQL',
      async open() {
        const pg = await startPostgres();
        const run = (q) => execFileSync('psql', [pg.url, '-At', '-c', q], { encoding: 'utf8' }).trim();
        return {
          url: pg.url,
          rows: (q) => JSON.parse(run(`SELECT coalesce(json_agg(t), '[]') FROM (${q}) t`)),
          exec: (q) => { run(q); },
          close: () => pg.destroy(),
        };
      },
    });
  }
  return backends;
}
