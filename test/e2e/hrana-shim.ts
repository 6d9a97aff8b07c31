/**
 * A test stand-in for a libSQL server: just enough of the Hrana protocol over HTTP (version 2,
 * JSON: `POST /v2/pipeline` with `execute`, `batch`, `store_sql`, `close_sql`, `close`) for
 * `@libsql/client/web`, executing on a libSQL database file through the `libsql` engine (the
 * native package `@libsql/client` itself runs on in Node).
 *
 * It exists because no libSQL server (sqld, `turso dev`) installs here from npm or Debian. It is
 * not sqld: one connection, requests run one at a time (which is how a single SQLite writer
 * behaves anyway), no auth, no streams kept across requests beyond their baton. What it proves is
 * that the worker's own libSQL path — `LIBSQL_URL`, `@libsql/client/web` inside workerd, Drizzle's
 * libsql driver, batches as transactions — works end to end against a real libSQL engine.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Database from "libsql";

type InValue = null | number | string | Uint8Array;

type HranaValue =
  | { type: "null" }
  | { type: "integer"; value: string }
  | { type: "float"; value: number }
  | { type: "text"; value: string }
  | { type: "blob"; base64: string };
interface HranaStmt {
  sql?: string;
  sql_id?: number;
  args?: HranaValue[];
  named_args?: { name: string; value: HranaValue }[];
  want_rows?: boolean;
}
type HranaCond =
  | { type: "ok"; step: number }
  | { type: "error"; step: number }
  | { type: "not"; cond: HranaCond }
  | { type: "and"; conds: HranaCond[] }
  | { type: "or"; conds: HranaCond[] }
  | { type: "is_autocommit" };
interface HranaRequest {
  type: string;
  stmt?: HranaStmt;
  batch?: { steps: { stmt: HranaStmt; condition?: HranaCond | null }[] };
  sql_id?: number;
  sql?: string;
}

function fromHrana(value: HranaValue): InValue {
  switch (value.type) {
    case "null":
      return null;
    case "integer":
      return Number(value.value);
    case "float":
    case "text":
      return value.value;
    case "blob":
      return new Uint8Array(Buffer.from(value.base64, "base64"));
  }
}

function toHrana(value: unknown): HranaValue {
  if (value === null || value === undefined) return { type: "null" };
  if (typeof value === "bigint") return { type: "integer", value: value.toString() };
  if (typeof value === "number") return Number.isInteger(value) ? { type: "integer", value: String(value) } : { type: "float", value };
  if (typeof value === "string") return { type: "text", value };
  return { type: "blob", base64: Buffer.from(value as ArrayBuffer).toString("base64") };
}

export interface HranaShim {
  url: string;
  db: Database.Database;
  /** Every SQL text executed, in order (for tests that look at what ran). */
  executed: string[];
  /**
   * An outage: `"failing"` answers every pipeline `503` (a server in trouble), `"refusing"` stops
   * listening (nothing there); `"serving"` listens on the same port again.
   */
  setState(state: "serving" | "failing" | "refusing"): Promise<void>;
  close(): Promise<void>;
}

/** Starts the shim on a free port over the libSQL database at `file`. */
export async function startHranaShim(file: string): Promise<HranaShim> {
  const db = new Database(file);
  // As D1 does (the stores work either way: see src/store/users.ts, delete).
  db.exec("PRAGMA foreign_keys = ON");
  const storedSql = new Map<number, string>();
  const executed: string[] = [];
  let queue = Promise.resolve();

  async function execute(stmt: HranaStmt) {
    const sql = stmt.sql ?? storedSql.get(stmt.sql_id ?? -1);
    if (sql === undefined) throw Object.assign(new Error("unknown sql_id"), { code: "SQL_NOT_FOUND" });
    executed.push(sql);
    const args = stmt.named_args?.length
      ? Object.fromEntries(stmt.named_args.map((a) => [a.name.replace(/^[:@$]/, ""), fromHrana(a.value)]))
      : (stmt.args ?? []).map(fromHrana);
    const statement = db.prepare(sql);
    if (statement.reader) {
      const rows = statement.raw(true).all(args) as unknown[][];
      const before = db.prepare("SELECT changes() AS n").get() as { n: number };
      return {
        cols: statement.columns().map((c) => ({ name: c.name, decltype: c.type })),
        rows: stmt.want_rows === false ? [] : rows.map((row) => row.map(toHrana)),
        // RETURNING statements write too; `changes()` tells how many rows they touched.
        affected_row_count: /^\s*(insert|update|delete)/i.test(sql) ? before.n : 0,
        last_insert_rowid: null,
      };
    }
    const info = statement.run(args);
    return { cols: [], rows: [], affected_row_count: info.changes, last_insert_rowid: String(info.lastInsertRowid) };
  }

  const asError = (error: unknown) => ({
    message: error instanceof Error ? error.message : String(error),
    code: (error as { code?: string }).code ?? "UNKNOWN",
  });

  async function handle(request: HranaRequest) {
    switch (request.type) {
      case "execute":
        return { type: "execute", result: await execute(request.stmt as HranaStmt) };
      case "batch": {
        const results: unknown[] = [];
        const errors: unknown[] = [];
        const holds = (cond: HranaCond | null | undefined): boolean => {
          if (!cond) return true;
          switch (cond.type) {
            case "ok":
              return results[cond.step] !== null && results[cond.step] !== undefined;
            case "error":
              return errors[cond.step] !== null && errors[cond.step] !== undefined;
            case "not":
              return !holds(cond.cond);
            case "and":
              return cond.conds.every(holds);
            case "or":
              return cond.conds.some(holds);
            case "is_autocommit":
              return false;
          }
        };
        for (const step of request.batch?.steps ?? []) {
          if (!holds(step.condition)) {
            results.push(null);
            errors.push(null);
            continue;
          }
          try {
            results.push(await execute(step.stmt));
            errors.push(null);
          } catch (error) {
            results.push(null);
            errors.push(asError(error));
          }
        }
        return { type: "batch", result: { step_results: results, step_errors: errors } };
      }
      case "store_sql":
        storedSql.set(request.sql_id as number, request.sql as string);
        return { type: "store_sql" };
      case "close_sql":
        storedSql.delete(request.sql_id as number);
        return { type: "close_sql" };
      case "close":
        return { type: "close" };
      default:
        throw new Error(`the shim does not implement ${request.type}`);
    }
  }

  let failing = false;
  const server: Server = createServer((req, res) => {
    if (failing) {
      res.writeHead(503, { "content-type": "text/plain" }).end("Service Unavailable");
      return;
    }
    if (req.method !== "POST" || req.url !== "/v2/pipeline") {
      res.writeHead(404, { "content-type": "text/plain" }).end("Not Found");
      return;
    }
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      // One pipeline at a time: a batch's BEGIN … COMMIT must not interleave with another's.
      queue = queue.then(async () => {
        const pipeline = JSON.parse(body) as { baton: string | null; requests: HranaRequest[] };
        const results = [];
        for (const request of pipeline.requests) {
          try {
            results.push({ type: "ok", response: await handle(request) });
          } catch (error) {
            results.push({ type: "error", error: asError(error) });
          }
        }
        const open = !pipeline.requests.some((r) => r.type === "close");
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ baton: open ? "shim" : null, base_url: null, results }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    db,
    executed,
    async setState(state) {
      failing = state === "failing";
      if (state === "refusing" && server.listening) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      if (state !== "refusing" && !server.listening) await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    },
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      db.close();
    },
  };
}
