// `npm run dev`: prepares a fresh clone for `wrangler dev` without any manual step or network
// access — generates .dev.vars (a development signing key set and OTP secret) when it is missing,
// applies the D1 migrations to the local database — then starts `wrangler dev`.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { forgetDevServer, localStateDir, recordDevServer } from "./lib/cli.mjs";
import { generateSigningJwk, randomSecret, writeDevVars } from "./lib/keys.mjs";

const DEV_VARS = ".dev.vars";
const devArgs = process.argv.includes("--start") ? process.argv.slice(process.argv.indexOf("--start") + 1) : [];

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

// Nothing local needs the network: no telemetry, and no download of the `Request.cf` sample
// (miniflare falls back to a placeholder, but would first try workers.cloudflare.com).
const offline = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };

// The migrations go to the state wrangler dev will open: same --persist-to and --config.
const target = ["persist-to", "config"].flatMap((name) => (devOption(name) === undefined ? [] : [`--${name}`, devOption(name)]));
execFileSync("npx", ["wrangler", "d1", "migrations", "apply", "DB", "--local", ...target], {
  stdio: "inherit",
  env: { ...offline, CI: "true" }, // CI=true: apply without the interactive confirmation
});

/** `port` if nothing listens on it, else one the OS picks (what wrangler does for its default). */
function freePort(port, host) {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (error) => (port === 0 ? reject(error) : resolve(freePort(0, host))));
    server.listen(port, host, () => {
      const chosen = server.address().port;
      server.close(() => resolve(chosen));
    });
  });
}

if (process.argv.includes("--start")) {
  // The port is settled here rather than by wrangler, so the URL recorded below is the real one.
  const host = devOption("ip") ?? "localhost";
  const port = devOption("port") ?? String(await freePort(8787, host));
  const args = devOption("port") === undefined ? [...devArgs, "--port", port] : devArgs;
  const dev = spawn("npx", ["wrangler", "dev", ...args], {
    stdio: "inherit",
    env: offline,
  });
  // Tell the operator scripts (scripts/lib/cli.mjs) that this server serves this local state, so
  // they send their writes to it instead of opening its SQLite files from a second process.
  const stateDir = localStateDir({ "persist-to": devOption("persist-to"), config: devOption("config") });
  const urlHost = ["0.0.0.0", "::", "*"].includes(host) ? "localhost" : host.includes(":") ? `[${host}]` : host;
  mkdirSync(stateDir, { recursive: true });
  recordDevServer(stateDir, `http://${urlHost}:${port}`, process.pid);
  dev.on("exit", (code) => {
    forgetDevServer(stateDir, process.pid);
    process.exit(code ?? 0);
  });
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
}
