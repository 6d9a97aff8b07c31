/**
 * The driver seam: what the stores need from a database, whichever driver is underneath (D1
 * through `drizzle-orm/d1`, or libSQL through `drizzle-orm/libsql`). Both are SQLite, both take
 * the same Drizzle query builders, both run `batch()` as one transaction (all statements or
 * none). What differs — result shapes and error objects — is translated here and nowhere else.
 */

import { fillPlaceholders, type Placeholder, QueryPromise, sql } from "drizzle-orm";
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

/**
 * Runs a guarded batch (its guard aborts it through a NOT NULL constraint, see `StoreError`):
 * its results when it applied, null when the guard stopped it and nothing was written.
 */
export async function runGuardedBatch(db: Db, queries: (Query | false | null | undefined)[]): Promise<unknown[] | null> {
  try {
    return await runBatch(db, queries);
  } catch (error) {
    if (error instanceof StoreError && error.kind === "guard_failed") return null;
    throw error;
  }
}

/** `runGuardedBatch` for a batch whose results say nothing more: whether it applied. */
export async function runGuarded(db: Db, queries: (Query | false | null | undefined)[]): Promise<boolean> {
  return (await runGuardedBatch(db, queries)) !== null;
}

/** Rows a write changed, from either driver's result: D1's `meta.changes`, libSQL's `rowsAffected`. */
export function affectedRows(result: unknown): number {
  if (Array.isArray(result)) return result.length; // `.returning()` rows
  const r = result as { meta?: { changes?: number }; rowsAffected?: number } | null;
  return r?.meta?.changes ?? r?.rowsAffected ?? 0;
}

/**
 * Expected constraint failures, one type on both drivers. `guard_failed` is the NOT NULL
 * constraint a guarded batch uses to abort itself (see codes.ts, and `auditEntryWhile`); callers
 * of the store never see it, the store turns it into its method's answer.
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

/** An error and its causes, each with its message (drizzle wraps the driver's error; D1 and libSQL word the same SQLite message). */
function* causes(error: unknown): Generator<{ error: unknown; message: string }> {
  for (let e: unknown = error, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    yield { error: e, message: e instanceof Error ? e.message : String(e) };
  }
}

/** The NOT NULL columns a guarded batch's first statement leaves NULL to abort the batch. */
const GUARD_COLUMNS = ["activity.user_id", "admin_audit.action"];

/**
 * Maps a driver error to a `StoreError` when it is a constraint violation this layer names;
 * anything else is returned unchanged. SQLite reports the violated column in the message on
 * both drivers ("UNIQUE constraint failed: users.email"), so this is the one place that reads it.
 */
export function toStoreError(error: unknown): unknown {
  if (error instanceof StoreError) return error;
  for (const { message } of causes(error)) {
    if (message.includes("UNIQUE constraint failed")) {
      if (message.includes("users.email")) return new StoreError("email_taken", { cause: error });
      if (message.includes("users.username")) return new StoreError("username_taken", { cause: error });
    }
    if (message.includes("NOT NULL constraint failed") && GUARD_COLUMNS.some((column) => message.includes(column))) {
      return new StoreError("guard_failed", { cause: error });
    }
  }
  return error;
}

/**
 * What a database that did not answer says, as opposed to a query that is wrong. D1: the errors
 * its own list says to retry (developers.cloudflare.com/d1/observability/debug-d1, "List of
 * D1_ERRORs", and best-practices/retry-queries: a lost connection, the database object restarting
 * or reset, a transient issue, overload). SQLite on either driver: busy or locked. A D1 error
 * names no code of its own, so the wording is what there is to go by (as `setupError` reads
 * "no such table"); an error not listed stays what it was, a 500.
 */
const OUTAGE_MESSAGES = [
  "Network connection lost",
  "object to be reset",
  "reset because its code was updated",
  "due to transient issue",
  "D1 DB is overloaded",
  "exceeded its memory limit and was reset",
  "exceeded its CPU time limit and was reset",
  "SQLITE_BUSY",
  "database is locked",
];
/** libSQL's client codes (`LibsqlError.code`) for a server that failed or a connection that broke. */
const OUTAGE_CODES = new Set(["SERVER_ERROR", "HRANA_WEBSOCKET_ERROR", "HRANA_CLOSED_ERROR", "SQLITE_BUSY"]);

/** Whether `error` (or a cause of it) says the database did not answer, rather than that a query is wrong. */
export function isDatabaseOutage(error: unknown): boolean {
  for (const { error: e, message } of causes(error)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && OUTAGE_CODES.has(code)) return true;
    if (OUTAGE_MESSAGES.some((text) => message.includes(text))) return true;
  }
  return false;
}

/** Runs one statement, mapping its driver error like `runBatch` does. */
export async function runOne<T>(query: PromiseLike<T>): Promise<T> {
  try {
    return await query;
  } catch (error) {
    throw toStoreError(error);
  }
}

// ---- statements prepared once per isolate ----

/** A placeholder per value name, for the builder of a `prepared` statement. */
export type Placeholders<V> = { readonly [K in keyof V]: Placeholder<K & string, V[K]> };

/** The arguments Drizzle's builders hand their session's `prepareQuery`: the query first. */
type PrepareArgs = [query: { sql: string; params: unknown[] }, ...rest: unknown[]];

interface DrizzleStatement {
  joinsNotNullableMap?: unknown;
  execute(): Promise<unknown>;
}

interface DrizzleSession {
  prepareQuery(...args: PrepareArgs): DrizzleStatement;
}

/**
 * The builders' session, recording instead of preparing: a builder's `_prepare()` hands it the
 * finished SQL, the fields to map rows onto and how to run it, which is all a template needs.
 * Both drivers' dialects are Drizzle's SQLite dialect, so one recording serves D1 and libSQL.
 */
let recorder: Db | null = null;
function recordingDb(): Db {
  if (!recorder) {
    recorder = drizzle({} as D1Database) as unknown as Db;
    const session = (recorder as unknown as { session: Record<string, unknown> }).session;
    session.prepareQuery = session.prepareOneTimeQuery = (...args: PrepareArgs) => ({ args });
  }
  return recorder;
}

const placeholders = new Proxy({} as Record<string, Placeholder>, { get: (_, name) => sql.placeholder(String(name)) });

/**
 * The SQL of a hot statement, built once per isolate instead of once per request.
 *
 * Drizzle builds a query's SQL text from its builder on every execution, and that costs more
 * than the rest of a request's JavaScript: about 120 µs for `/me`'s one statement, measured in
 * V8 (README, "Performance"), against about 6 µs for binding a finished template. D1 sessions
 * are per request (replica.ts), so Drizzle's own `.prepare()`, which binds to one client, cannot
 * be kept across requests; the SQL and its result mapping can. `build` runs once, with a
 * placeholder (`p.name`) for every per-request value; each call then hands the template with the
 * values filled in to the request's own session, as Drizzle's `prepareQuery` would.
 *
 * The result is awaited, or put in `runBatch`, exactly like the builder it stands for (it is
 * typed as one so batch results keep their types). Build the shape once: anything that changes
 * the SQL text per request (an optional condition, a column list) needs its own template.
 * Placeholders skip column encoders: pass values as the driver stores them (numbers for booleans).
 */
export function prepared<V extends Record<string, unknown>, Q extends Query>(
  build: (db: Db, p: Placeholders<V>) => Q,
): (db: Db, values: V) => Q {
  let template: { args: PrepareArgs; joinsNotNullableMap?: unknown } | null = null;
  return (db, values) => {
    template ??= (build(recordingDb(), placeholders as Placeholders<V>) as unknown as { _prepare(): typeof template })._prepare();
    const [query, ...rest] = (template as NonNullable<typeof template>).args;
    const session = (db as unknown as { session: DrizzleSession }).session;
    const statement = session.prepareQuery({ sql: query.sql, params: fillPlaceholders(query.params, values) }, ...rest);
    statement.joinsNotNullableMap = template?.joinsNotNullableMap;
    return new PreparedStatement(statement) as unknown as Q;
  };
}

/**
 * A prepared statement in each shape of a query with two optional parts (e.g. a filter and a
 * cursor): each shape is its own SQL text, so each is its own template.
 */
export function preparedShapes<S>(make: (first: boolean, second: boolean) => S): (first: boolean, second: boolean) => S {
  const shapes = [make(false, false), make(false, true), make(true, false), make(true, true)] as const;
  return (first, second) => shapes[((first ? 2 : 0) + (second ? 1 : 0)) as 0 | 1 | 2 | 3];
}

/**
 * What `db.batch` and `await` need of a builder: `_prepare()` for the one, Drizzle's own
 * `QueryPromise` (the builders' base class) for the other.
 */
class PreparedStatement extends QueryPromise<unknown> {
  constructor(private readonly statement: DrizzleStatement) {
    super();
  }

  _prepare(): DrizzleStatement {
    return this.statement;
  }

  override execute(): Promise<unknown> {
    return this.statement.execute();
  }
}
