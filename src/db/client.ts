import type { BatchItem } from "drizzle-orm/batch";
import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Db = DrizzleD1Database<typeof schema> & { $client: D1Database };

const instances = new WeakMap<D1Database, Db>();

/**
 * The Drizzle client over a D1 binding, made once per binding per isolate (workerd hands every
 * request the same binding object): building one walks the whole schema, about 40 µs of V8 time
 * that every request, even /health, paid before (issue 7). It holds no per-request state.
 */
export function createDb(d1: D1Database): Db {
  let db = instances.get(d1);
  if (!db) {
    db = drizzle(d1, { schema });
    instances.set(d1, db);
  }
  return db;
}
export type Query = BatchItem<"sqlite">;

/**
 * Runs queries as one D1 batch: a single round trip, executed as one transaction, so either
 * every statement applies or none does. Falsy entries are skipped to keep call sites flat.
 */
export async function runBatch(db: Db, queries: (Query | false | null | undefined)[]) {
  const list = queries.filter((q): q is Query => Boolean(q));
  if (list.length === 0) return [];
  return db.batch(list as [Query, ...Query[]]);
}

/** True when a D1 error is a UNIQUE violation on `column` (e.g. "users.email"). */
export function isUniqueViolation(error: unknown, column: string): boolean {
  for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
    const message = e instanceof Error ? e.message : String(e);
    if (message.includes("UNIQUE constraint failed") && message.includes(column)) return true;
  }
  return false;
}
