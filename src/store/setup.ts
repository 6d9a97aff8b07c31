/**
 * Whether the database answers (`ping`, for `GET /health/ready`) and has been migrated: the
 * schema's tables missing from it. Asked by the
 * readiness check (`/health`) until it first finds none missing, per database, so a migrated
 * database costs nothing afterwards. It reads the catalogue on the binding itself, not through a
 * replica session or Drizzle, so it answers on a database that has no tables at all.
 */
import { getTableName, is, sql } from "drizzle-orm";
import { SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Db } from "./driver";
import * as schema from "./schema";

export interface SetupCheck {
  /** One trivial query (`SELECT 1`): resolves when the database answers. */
  ping(): Promise<void>;
  missingTables(): Promise<string[]>;
}

/** Every table the migrations create, from the schema itself. */
const TABLES = Object.values(schema)
  .filter((value) => is(value, SQLiteTable))
  .map((table) => getTableName(table as SQLiteTable));

// workerd hands every request the same binding; the libSQL database is one object per URL.
const migrated = new WeakSet<object>();

function check(key: object, ping: () => Promise<unknown>, tableNames: () => Promise<string[]>): SetupCheck {
  return {
    async ping() {
      await ping();
    },
    async missingTables() {
      if (migrated.has(key)) return [];
      const present = new Set(await tableNames());
      const missing = TABLES.filter((name) => !present.has(name));
      if (missing.length === 0) migrated.add(key);
      return missing;
    },
  };
}

export function D1SetupCheck(binding: D1Database): SetupCheck {
  return check(
    binding,
    () => binding.prepare("SELECT 1").first(),
    async () => {
      const { results } = await binding.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all<{ name: string }>();
      return results.map((row) => row.name);
    },
  );
}

export function LibsqlSetupCheck(db: Db): SetupCheck {
  return check(
    db,
    () => db.all(sql`SELECT 1`),
    async () => {
      const rows = await db.all<{ name: string }>(sql`SELECT name FROM sqlite_master WHERE type = 'table'`);
      return rows.map((row) => row.name);
    },
  );
}
