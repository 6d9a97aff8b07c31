/**
 * The store conformance suite against a real libSQL database in Node: `@libsql/client` on a
 * temporary file, the same migrations/ applied as D1 gets them.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "@libsql/client";
import { afterAll } from "vitest";
import { DrizzleStores, LibsqlDb, migrationStatements } from "../../src/store";
import { storeConformance } from "./conformance";

const dir = mkdtempSync(join(tmpdir(), "latchkey-libsql-"));
let client: Client | undefined;

afterAll(() => {
  client?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Applies every migrations/*.sql in order, as `wrangler d1 migrations apply` does. */
async function migrate(db: Client) {
  for (const file of readdirSync("migrations")
    .filter((f) => f.endsWith(".sql"))
    .sort()) {
    await db.batch(migrationStatements(readFileSync(join("migrations", file), "utf8")), "write");
  }
}

storeConformance("libSQL", async () => {
  // One connection (the client runs each batch synchronously on it, so concurrent calls serialise
  // as on one SQLite writer). Foreign keys are switched off on it, as a libSQL server may leave
  // them (libsql turns them on by default; SQLite itself does not): the stores must not depend on
  // their enforcement (D1 always enforces them, and test/store/d1.test.ts runs the suite there).
  client = createClient({ url: `file:${join(dir, "store.db")}`, concurrency: 1 });
  await client.execute("PRAGMA foreign_keys = OFF");
  await migrate(client);
  if ((await client.execute("PRAGMA foreign_keys")).rows[0]?.[0] !== 0) throw new Error("foreign keys are still enforced");
  const db = client;
  return {
    stores: DrizzleStores(LibsqlDb(db)),
    async run(sql, ...params) {
      await db.execute({ sql, args: params as never });
    },
    async count(sql, ...params) {
      const result = await db.execute({ sql, args: params as never });
      return Number(result.rows[0]?.n ?? 0);
    },
  };
});
