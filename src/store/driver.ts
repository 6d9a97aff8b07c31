/**
 * The driver seam: what the stores need from a database, whichever driver is underneath (D1
 * through `drizzle-orm/d1`, or libSQL through `drizzle-orm/libsql`). Both are SQLite, both take
 * the same Drizzle query builders, both run `batch()` as one transaction (all statements or
 * none). What differs — result shapes and error objects — is translated here and nowhere else.
 */
import type { BatchItem, BatchResponse } from "drizzle-orm/batch";
import { drizzle } from "drizzle-orm/d1";
import type { BaseSQLiteDatabase } from "drizzle-orm/sqlite-core";

/**
 * A Drizzle database over either driver. `run()` results are driver-specific (`D1Result` or
 * libSQL's `ResultSet`): read them only through `affectedRows`. Built without Drizzle's
 * relational schema (the stores use query builders only), so making one is cheap enough to do
 * per request for a D1 session.
 */
export type Db = BaseSQLiteDatabase<"async", unknown> & {
  batch<U extends BatchItem<"sqlite">, T extends Readonly<[U, ...U[]]>>(batch: T): Promise<BatchResponse<T>>;
};

export type Query = BatchItem<"sqlite">;

const d1Instances = new WeakMap<object, Db>();

/**
 * The Drizzle client over a D1 binding or a D1 session (which has the same `prepare` and
 * `batch`), made once per object: workerd hands every request the same binding object.
 */
export function D1Db(d1: D1Database | D1DatabaseSession): Db {
  let db = d1Instances.get(d1);
  if (!db) {
    db = drizzle(d1 as D1Database) as unknown as Db;
    d1Instances.set(d1, db);
  }
  return db;
}

/**
 * Runs queries as one batch: a single round trip, executed as one transaction on either driver,
 * so either every statement applies or none does. Falsy entries are skipped to keep call sites
 * flat. Driver errors come out as `StoreError` when they are a constraint this layer knows.
 */
export async function runBatch(db: Db, queries: (Query | false | null | undefined)[]): Promise<unknown[]> {
  const list = queries.filter((q): q is Query => Boolean(q));
  if (list.length === 0) return [];
  try {
    return (await db.batch(list as [Query, ...Query[]])) as unknown[];
  } catch (error) {
    throw toStoreError(error);
  }
}

/** Rows a write changed, from either driver's result: D1's `meta.changes`, libSQL's `rowsAffected`. */
export function affectedRows(result: unknown): number {
  if (Array.isArray(result)) return result.length; // `.returning()` rows
  const r = result as { meta?: { changes?: number }; rowsAffected?: number } | null;
  return r?.meta?.changes ?? r?.rowsAffected ?? 0;
}

/**
 * Expected constraint failures, one type on both drivers. `guard_failed` is the NOT NULL
 * constraint a guarded batch uses to abort itself (see codes.ts); callers of the store never see
 * it, the store turns it into its method's answer.
 */
export type StoreErrorKind = "email_taken" | "username_taken" | "guard_failed";

export class StoreError extends Error {
  constructor(
    readonly kind: StoreErrorKind,
    options?: { cause?: unknown },
  ) {
    super(`store: ${kind}`, options);
    this.name = "StoreError";
  }
}

/** The messages of an error and its causes (drizzle wraps the driver's error; D1 and libSQL word the same SQLite message). */
function messages(error: unknown): string[] {
  const out: string[] = [];
  for (let e: unknown = error, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    out.push(e instanceof Error ? e.message : String(e));
  }
  return out;
}

/**
 * Maps a driver error to a `StoreError` when it is a constraint violation this layer names;
 * anything else is returned unchanged. SQLite reports the violated column in the message on
 * both drivers ("UNIQUE constraint failed: users.email"), so this is the one place that reads it.
 */
export function toStoreError(error: unknown): unknown {
  if (error instanceof StoreError) return error;
  for (const message of messages(error)) {
    if (message.includes("UNIQUE constraint failed")) {
      if (message.includes("users.email")) return new StoreError("email_taken", { cause: error });
      if (message.includes("users.username")) return new StoreError("username_taken", { cause: error });
    }
    if (message.includes("NOT NULL constraint failed") && message.includes("activity.user_id")) {
      return new StoreError("guard_failed", { cause: error });
    }
  }
  return error;
}

/** Runs one statement, mapping its driver error like `runBatch` does. */
export async function runOne<T>(query: PromiseLike<T>): Promise<T> {
  try {
    return await query;
  } catch (error) {
    throw toStoreError(error);
  }
}
