import type { BatchItem } from "drizzle-orm/batch";
import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

export function createDb(d1: D1Database) {
  return drizzle(d1, { schema });
}
export type Db = ReturnType<typeof createDb>;
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
