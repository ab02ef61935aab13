// Prepared statements, prepared once per database: preparing on every call was the top cost in the
// trace replay's profile.
import type Database from "better-sqlite3";

export function statementCache(db: Database.Database): (sql: string) => Database.Statement {
  const cache = new Map<string, Database.Statement>();
  return (sql) => {
    let st = cache.get(sql);
    if (!st) {
      st = db.prepare(sql);
      cache.set(sql, st);
    }
    return st;
  };
}

const caches = new WeakMap<Database.Database, (sql: string) => Database.Statement>();

/** `sql` prepared once per database, for code that holds the database but no cache of its own. */
export function prepared(db: Database.Database, sql: string): Database.Statement {
  let cache = caches.get(db);
  if (!cache) caches.set(db, (cache = statementCache(db)));
  return cache(sql);
}
