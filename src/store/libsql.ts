/**
 * The libSQL / Turso side of the driver seam. Takes a `@libsql/client` Client (the `/web` build in
 * the worker, the Node build with a `file:` URL in tests) and gives the same `Db` the D1 side
 * gives, so every store works unchanged.
 *
 * Batches run as `write` transactions (`BEGIN IMMEDIATE`): a batch takes the write lock before its
 * first statement, as D1 serialises every batch, so a conditional write's read (the rotation's
 * "parent still live", a code's "still live" guard) and its write see one state even when another
 * connection writes concurrently. libSQL's default (`deferred`) would turn that race into
 * SQLITE_BUSY for one of them instead.
 */
import { type Client, createClient, type InStatement, type TransactionMode } from "@libsql/client/web";
import { drizzle } from "drizzle-orm/libsql/web";
import type { Db } from "./driver";

export function LibsqlDb(client: Client): Db {
  const writeBatches = new Proxy(client, {
    get(target, property, receiver) {
      if (property === "batch") {
        return (statements: InStatement[], mode?: TransactionMode) => target.batch(statements, mode ?? "write");
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return drizzle({ client: writeBatches }) as unknown as Db;
}

/** The SQL statements of a drizzle-kit migration file, split at its statement breakpoints. */
export function migrationStatements(sqlText: string): string[] {
  return sqlText
    .split("--> statement-breakpoint")
    .map((statement) => statement.trim())
    .filter((statement) => statement.length > 0);
}

const remote = new Map<string, Db>();

/**
 * The database at `url` (`libsql://…` or `https://…`) over HTTP, made once per URL and token per
 * isolate: the client holds no per-request state, and reusing it keeps its connection warm.
 */
export function LibsqlDatabase(url: string, authToken: string | undefined): Db {
  const key = `${url}\n${authToken ?? ""}`;
  let db = remote.get(key);
  if (!db) {
    db = LibsqlDb(createClient({ url, authToken }));
    remote.set(key, db);
  }
  return db;
}
