// The embedded store: one SQLite file under the state dir, opened once by the daemon. Each concern
// keeps its own tables in its own repository module (store/*.ts) and creates them on open; writes
// that must agree go in one db.transaction().
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

export function openDatabase(path: string): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  // WAL: readers (tsnet status) never block the daemon; NORMAL sync is durable across a daemon
  // crash (kill -9), which is the failure we promise to survive, and cheap on the request path.
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}
