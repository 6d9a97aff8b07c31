// Shared plumbing for the operator scripts: flags, the wrangler calls they wrap, clean failures.
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { offlineEnv } from "./offline.mjs";

/** An expected failure: printed as one line, exit code 1, no stack trace. */
export class CliError extends Error {}

/** Runs `main`, turning a CliError into `error: …` on stderr and exit code 1. */
export async function runCli(main) {
  try {
    await main();
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    console.error(`error: ${error.message}`);
    process.exitCode = 1;
  }
}

/** The flags every wrangler-backed script takes, plus the script's own. */
export function parseCli(options = {}, { allowPositionals = true, args = process.argv.slice(2) } = {}) {
  try {
    return parseArgs({
      args,
      options: {
        remote: { type: "boolean", default: false },
        "persist-to": { type: "string" },
        config: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
        ...options,
      },
      allowPositionals,
      strict: true,
    });
  } catch (error) {
    throw new CliError(error.message);
  }
}

/** The environments a deploy may target; the top level of wrangler.toml is local development. */
export const DEPLOY_ENVS = ["staging", "production"];

/**
 * Where wrangler should act: the local state of `wrangler dev` (default, or `--persist-to <dir>`),
 * or with `--remote` the deployed resources of the environment `CLOUDFLARE_ENV` names (wrangler's
 * own variable; without it wrangler would use the top level's placeholder bindings, and the
 * scripts the development settings, such as its password hasher).
 */
export function targetArgs(values) {
  if (values.remote && values["persist-to"]) throw new CliError("--persist-to is for local state; it cannot be combined with --remote");
  if (values.remote && !DEPLOY_ENVS.includes(process.env.CLOUDFLARE_ENV ?? "")) {
    throw new CliError(`--remote acts on a deployed environment: name it with CLOUDFLARE_ENV=${DEPLOY_ENVS.join("|")}`);
  }
  const args = values.remote ? ["--remote"] : ["--local"];
  if (values["persist-to"]) args.push("--persist-to", values["persist-to"]);
  if (values.config) args.push("--config", values.config);
  return args;
}

const require = createRequire(import.meta.url);
const WRANGLER = require.resolve("wrangler/bin/wrangler.js");

// A local write through wrangler is a second process on the SQLite files `wrangler dev` has open,
// and neither side waits for a lock: either may fail with SQLITE_BUSY. The dev-server route below
// avoids that; this retry covers a dev server that scripts/dev.mjs did not start (plain
// `wrangler dev`). Retrying is safe: a D1 batch that fails is rolled back, a KV put is idempotent.
const BUSY = /SQLITE_BUSY|database is locked/;
const BUSY_RETRIES = 6;

/** Runs wrangler; resolves with its stdout, or throws a CliError carrying its stderr. */
export async function wrangler(args) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await wranglerOnce(args);
    } catch (error) {
      if (!(error instanceof CliError) || !BUSY.test(error.message) || attempt >= BUSY_RETRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt + Math.random() * 100));
    }
  }
}

function wranglerOnce(args) {
  return spawnWrangler(WRANGLER, args, { shown: args.slice(0, 3) });
}

/**
 * Runs a wrangler entry point (`entry`: wrangler's own bin, or scripts/wrangler.mjs) with `args`,
 * non-interactively: CI=true, so no command waits on a prompt the operator cannot see. Resolves
 * with stdout; `input` goes to stdin (secret values, never on a command line). Rejects with a
 * CliError naming the command by `shown` and carrying stderr.
 */
export function spawnWrangler(entry, args, { input, shown = args } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry, ...args], {
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      // The scripts' own secret inputs (LATCHKEY_ADMIN_PASSWORD, LATCHKEY_MAIL_API_KEY) are not
      // wrangler's business, and a child's environment is one more place they could be read from.
      env: { ...Object.fromEntries(Object.entries(offlineEnv()).filter(([name]) => !name.startsWith("LATCHKEY_"))), CI: "true" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    if (input !== undefined) child.stdin.end(input);
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolve(stdout);
      else reject(new CliError(`wrangler ${shown.join(" ")} failed:\n${(stderr || stdout).trim()}`));
    });
  });
}

/*
 * The running dev server's own API. `npm run dev` (scripts/dev.mjs) records where it serves a
 * local state in that state's directory; while it runs, the scripts send their reads and writes
 * of that state to it — wrangler dev's local explorer API (/cdn-cgi/explorer/api, the Cloudflare
 * REST API's shape for D1 and KV), served by the same workerd process that serves the worker —
 * instead of opening the SQLite files from a second process. One process, one writer: no
 * SQLITE_BUSY for the scripts, and none for the requests the server is answering. A D1 query
 * there runs all its statements in one transaction, like `wrangler d1 execute --file`.
 */
const DEV_SERVER_FILE = "latchkey-dev-server.json";

/** The local state directory the scripts and `wrangler dev` use for these flags. */
export function localStateDir(values) {
  return values["persist-to"] ?? join(dirname(values.config ?? "wrangler.toml"), ".wrangler", "state");
}

/** Called by scripts/dev.mjs: the dev server at `url` (run by process `pid`) serves `stateDir`. */
export function recordDevServer(stateDir, url, pid) {
  writeFileSync(join(stateDir, DEV_SERVER_FILE), `${JSON.stringify({ url, pid })}\n`);
}

/** Called by scripts/dev.mjs on exit, unless another dev server has recorded itself since. */
export function forgetDevServer(stateDir, pid) {
  const file = join(stateDir, DEV_SERVER_FILE);
  try {
    if (JSON.parse(readFileSync(file, "utf8")).pid === pid) rmSync(file);
  } catch {
    // already gone
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === "EPERM";
  }
}

async function explorerGet(base, path) {
  const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(3_000) });
  const body = await res.json();
  if (!body.success) throw new Error(JSON.stringify(body.errors));
  return body.result;
}

/** How long a recorded dev server whose process is alive may take to answer before the script gives up on it. */
const DEV_SERVER_PATIENCE_MS = 20_000;

let devServer;
/** The dev server serving this local state: its API base and the ids of DB and CONFIG; or null. */
function devServerFor(values) {
  devServer ??= (async () => {
    if (values.remote) return null;
    let recorded;
    try {
      recorded = JSON.parse(readFileSync(join(localStateDir(values), DEV_SERVER_FILE), "utf8"));
    } catch {
      return null;
    }
    const base = `${recorded.url}/cdn-cgi/explorer/api`;
    // A live server that is slow to answer (starting, or busy hashing passwords on a small
    // machine) is waited for: opening its SQLite files beside it is what risks SQLITE_BUSY.
    for (const deadline = Date.now() + DEV_SERVER_PATIENCE_MS; alive(recorded.pid); ) {
      try {
        const [databases, namespaces] = await Promise.all([explorerGet(base, "/d1/database"), explorerGet(base, "/storage/kv/namespaces")]);
        const d1Id = databases.find((db) => db.name === "DB")?.uuid;
        const kvId = namespaces.find((ns) => ns.title === "CONFIG")?.id;
        return d1Id && kvId ? { base, d1Id, kvId } : null;
      } catch {
        if (Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    return null; // gone, or never answering (stopped uncleanly): fall back to wrangler
  })();
  return devServer;
}

async function explorer(server, path, init) {
  let res;
  try {
    res = await fetch(`${server.base}${path}`, init);
  } catch (error) {
    throw new CliError(`the dev server at ${server.base} did not answer: ${error.message}`);
  }
  return res;
}

async function explorerResult(res, what) {
  const body = await res.json().catch(() => null);
  if (!body?.success)
    throw new CliError(`${what} failed through the dev server: ${body ? body.errors.map((e) => e.message).join("; ") : res.status}`);
  return body.result;
}

/** The value of a CONFIG key in KV, or null when it is not set. */
export async function kvGet(values, key) {
  const server = await devServerFor(values);
  if (server) {
    const res = await explorer(server, `/storage/kv/namespaces/${server.kvId}/values/${encodeURIComponent(key)}`);
    if (res.ok) return res.text();
    if (res.status === 404) return null;
    return explorerResult(res, `reading ${key}`);
  }
  const out = (await wrangler(["kv", "key", "get", key, ...kvArgs(values)])).replace(/\n$/, "");
  return out === KV_NOT_FOUND ? null : out;
}

/** Writes a CONFIG key in KV. */
export async function kvPut(values, key, text) {
  const server = await devServerFor(values);
  if (!server) return void (await wrangler(["kv", "key", "put", key, text, ...kvArgs(values)]));
  const res = await explorer(server, `/storage/kv/namespaces/${server.kvId}/values/${encodeURIComponent(key)}`, {
    method: "PUT",
    body: text,
  });
  await explorerResult(res, `writing ${key}`);
}

/** The names of the keys present in CONFIG. */
export async function kvKeys(values) {
  const server = await devServerFor(values);
  if (server) {
    const listed = await explorerResult(await explorer(server, `/storage/kv/namespaces/${server.kvId}/keys`), "listing keys");
    return new Set(listed.map((entry) => entry.name));
  }
  const out = await wrangler(["kv", "key", "list", ...kvArgs(values)]);
  try {
    return new Set(JSON.parse(out).map((entry) => entry.name));
  } catch {
    throw new CliError(`unexpected output from wrangler kv key list:\n${out.slice(0, 500)}`);
  }
}

// `wrangler kv key get` prints this (exit code 0) for a missing key. No valid value of any key
// can be this text, so reading it as "not set" never hides a value the worker would use.
const KV_NOT_FOUND = "Value not found";
const kvArgs = (values) => ["--binding", "CONFIG", ...targetArgs(values)];

/**
 * Runs SQL on a libSQL / Turso database (`LIBSQL_URL`, `LIBSQL_AUTH_TOKEN`: the same settings the
 * worker takes) with @libsql/client, the statements as one write transaction; returns the rows of
 * the last one. The scripts write one statement per line, each ending in ";".
 */
async function libsql(sql) {
  const { createClient } = await import("@libsql/client");
  const client = createClient({ url: process.env.LIBSQL_URL, authToken: process.env.LIBSQL_AUTH_TOKEN });
  try {
    const statements = sql
      .split(/;\s*(?:\n|$)/)
      .map((statement) => statement.trim())
      .filter(Boolean);
    const results = await client.batch(statements, "write");
    const last = results.at(-1);
    return (last?.rows ?? []).map((row) => Object.fromEntries(last.columns.map((column, i) => [column, row[i]])));
  } catch (error) {
    throw new CliError(`the libSQL database at ${process.env.LIBSQL_URL} refused the query: ${error.message}`);
  } finally {
    client.close();
  }
}

/**
 * Refuses a local run while `LIBSQL_URL` names a database: that is the deployed worker's, and the
 * run's KV and R2 writes would go to the local state while its SQL went there (a local
 * `config:set session_max_age` ending production sign-ins, `seed` writing its published-password
 * staff account into production). With `--remote`, everything goes to the deployed resources.
 */
export function assertDatabaseTarget(values) {
  if (process.env.LIBSQL_URL && !values.remote)
    throw new CliError(
      `LIBSQL_URL is set (${process.env.LIBSQL_URL}): it names the deployed worker's database. Add --remote to act on it, or unset LIBSQL_URL to act on the local state.`,
    );
}

/**
 * Runs SQL (one statement or several, as one transaction) on the worker's database and returns
 * the rows of the last statement: with `--remote`, on libSQL / Turso when `LIBSQL_URL` is set,
 * else on the deployed D1; locally, on D1 through the running dev server when there is one for
 * this state, else through `wrangler d1 execute DB --json`.
 */
export async function d1(values, { command, file }) {
  const target = targetArgs(values);
  assertDatabaseTarget(values);
  if (process.env.LIBSQL_URL) return libsql(file ? readFileSync(file, "utf8") : command);
  const server = await devServerFor(values);
  if (server) {
    const sql = file ? readFileSync(file, "utf8") : command;
    const init = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sql }) };
    const result = await explorerResult(await explorer(server, `/d1/database/${server.d1Id}/raw`, init), "the query");
    const { columns, rows } = result.at(-1)?.results ?? { columns: [], rows: [] };
    return rows.map((row) => Object.fromEntries(columns.map((column, i) => [column, row[i]])));
  }
  const args = ["d1", "execute", "DB", ...target, "--json", ...(file ? ["--file", file] : ["--command", command])];
  const out = await wrangler(args);
  let parsed;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new CliError(`unexpected output from wrangler d1 execute:\n${out.slice(0, 500)}`);
  }
  return parsed.at(-1)?.results ?? [];
}

/**
 * Runs `fn` with a new temporary folder readable only by this user (mkdtemp makes it 0700), for
 * files that hold secrets (a password hash on its way to wrangler), and removes it afterwards:
 * also when the operator presses Ctrl-C (or the process is terminated) while `fn` waits on
 * wrangler, which would otherwise end the process before any `finally` runs.
 */
export async function withPrivateTempDir(prefix, fn) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const onSignal = (signal) => {
    remove();
    process.exit(128 + (signal === "SIGINT" ? 2 : 15));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await fn(dir);
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    remove();
  }
}

/** A SQL string literal: single quotes doubled, NULL for null. Only for values we validated. */
export function sqlString(value) {
  if (value === null || value === undefined) return "NULL";
  return `'${String(value).replace(/'/g, "''")}'`;
}

/**
 * The worker's variable `name` as wrangler.toml sets it for the environment `CLOUDFLARE_ENV` names
 * (`[env.<name>.vars]`, which wrangler does not merge with the top level's), or for local
 * development (`[vars]`); undefined when unset.
 */
export async function wranglerVar(configPath, name) {
  // Read by wrangler's own parser, in a child process: importing wrangler installs its bundled
  // undici as this process's global fetch dispatcher, under which Node 20's fetch to the dev
  // server (see `d1`) then failed now and then ("fetch failed").
  const read = `const { experimental_readRawConfig } = await import("wrangler");
const { rawConfig } = experimental_readRawConfig({ config: process.argv[1] });
const env = process.env.CLOUDFLARE_ENV;
process.stdout.write(JSON.stringify((env ? rawConfig.env?.[env]?.vars : rawConfig.vars) ?? {}));`;
  const vars = await new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--input-type=module", "-e", read, configPath ?? "wrangler.toml"],
      { cwd: process.cwd(), env: offlineEnv() },
      (error, stdout, stderr) =>
        error ? reject(new CliError(`could not read ${configPath ?? "wrangler.toml"}: ${stderr.trim()}`)) : resolve(JSON.parse(stdout)),
    );
  });
  return vars[name];
}

/**
 * Reads one line from the terminal without echoing it (a password, a secret's value); without a
 * terminal, fails with `noTerminal` (which should say how to pass the value instead).
 */
export function promptHidden(question, noTerminal = `no terminal to ask "${question.trim()}"`) {
  const { stdin, stderr } = process;
  if (!stdin.isTTY) return Promise.reject(new CliError(noTerminal));
  return new Promise((resolve, reject) => {
    let value = "";
    stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (fn) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener("data", onData);
      stderr.write("\n");
      fn();
    };
    function onData(chunk) {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") return done(() => resolve(value));
        if (ch === "\u0003") return done(() => reject(new CliError("cancelled")));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else value += ch;
      }
    }
    stdin.on("data", onData);
  });
}
