// `npm run dev`: prepares a fresh clone for `wrangler dev` without any manual step or network
// access — generates .dev.vars (a development signing key set and OTP secret) when it is missing,
// applies the D1 migrations to the local database — then starts `wrangler dev` as the
// development environment (ENVIRONMENT=development, which turns on the /dev/mail inbox).
//
//   npm run dev -- [--port <n>] [--inspector-port <n>] [--persist-to <dir>] [other wrangler dev options]
//
// `--persist-to` (and `--config`) are honoured by the migrations step too, so a separate local
// state (the e2e tests use a temporary one) starts with its schema. Wrangler's debug logs, which
// include the worker's console output (and so the development mail lines with their codes), go
// to .wrangler/logs/ (git-ignored) unless WRANGLER_LOG_PATH says otherwise.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { forgetDevServer, localStateDir, recordDevServer } from "./lib/cli.mjs";
import { generateSigningJwk, randomSecret, writeDevVars } from "./lib/keys.mjs";
import { offlineEnv } from "./lib/offline.mjs";

const DEV_VARS = ".dev.vars";
const WRANGLER = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
const start = process.argv.indexOf("--start");
const devArgs = start < 0 ? [] : process.argv.slice(start + 1);

/** The value of `--name value` or `--name=value` among wrangler dev's arguments. */
function devOption(name) {
  const at = devArgs.findIndex((arg) => arg === `--${name}` || arg.startsWith(`--${name}=`));
  if (at === -1) return undefined;
  return devArgs[at].includes("=") ? devArgs[at].slice(name.length + 3) : devArgs[at + 1];
}

// With --env-file, wrangler dev reads its secrets from there and ignores .dev.vars.
if (!existsSync(DEV_VARS) && devOption("env-file") === undefined) {
  const key = await generateSigningJwk();
  writeDevVars(DEV_VARS, { JWT_KEYS: JSON.stringify({ keys: [key] }), OTP_SECRET: randomSecret(), MAIL_API_KEY: "" });
  console.log(`[dev] wrote ${DEV_VARS} with a new development signing key (kid ${key.kid})`);
}

// Nothing local needs the network (scripts/lib/offline.mjs); debug logs stay in the project.
const env = offlineEnv({ ...process.env, WRANGLER_LOG_PATH: process.env.WRANGLER_LOG_PATH || resolve(".wrangler/logs") });

// The migrations go to the state wrangler dev will open: same --persist-to and --config.
const target = ["persist-to", "config"].flatMap((name) => (devOption(name) === undefined ? [] : [`--${name}`, devOption(name)]));
execFileSync(process.execPath, [WRANGLER, "d1", "migrations", "apply", "DB", "--local", ...target], {
  stdio: "inherit",
  env: { ...env, CI: "true" }, // CI=true: apply without the interactive confirmation
});

/** `port` if nothing listens on it, else one the OS picks (what wrangler does for its default). */
function freePort(port, host) {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", (error) => (port === 0 ? reject(error) : resolvePort(freePort(0, host))));
    server.listen(port, host, () => {
      const chosen = server.address().port;
      server.close(() => resolvePort(chosen));
    });
  });
}

if (start >= 0) {
  // The port is settled here rather than by wrangler, so the URL recorded below is the real one.
  const host = devOption("ip") ?? "localhost";
  const port = devOption("port") ?? String(await freePort(8787, host));
  const args = devOption("port") === undefined ? [...devArgs, "--port", port] : devArgs;
  // A var given on the command line overrides [vars] in wrangler.toml, for this dev server only.
  const dev = spawn(process.execPath, [WRANGLER, "dev", "--var", "ENVIRONMENT:development", ...args], { stdio: "inherit", env });
  // Tell the operator scripts (scripts/lib/cli.mjs) that this server serves this local state, so
  // they send their writes to it instead of opening its SQLite files from a second process.
  const stateDir = localStateDir({ "persist-to": devOption("persist-to"), config: devOption("config") });
  const urlHost = ["0.0.0.0", "::", "*"].includes(host) ? "localhost" : host.includes(":") ? `[${host}]` : host;
  mkdirSync(stateDir, { recursive: true });
  recordDevServer(stateDir, `http://${urlHost}:${port}`, process.pid);
  dev.on("exit", (code, signal) => {
    forgetDevServer(stateDir, process.pid);
    process.exit(code ?? (signal ? 1 : 0));
  });
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
}
