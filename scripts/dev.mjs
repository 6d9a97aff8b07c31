// `npm run dev`: prepares a fresh clone for `wrangler dev` without any manual step or network
// access — generates .dev.vars (a development signing key set and OTP secret) when it is missing,
// applies the D1 migrations to the local database — then starts `wrangler dev` as the
// development environment (ENVIRONMENT=development, which turns on the /dev/mail inbox).
//
//   npm run dev -- [--port <n>] [--inspector-port <n>] [--persist-to <dir>] [other wrangler dev options]
//
// `--persist-to` is honoured by the migrations step too, so a separate local state (the e2e tests
// use a temporary one) starts with its schema. Wrangler's debug logs, which include the worker's
// console output (and so the development mail lines with their codes), go to .wrangler/logs/
// (git-ignored) unless WRANGLER_LOG_PATH says otherwise.
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { generateSigningJwk, randomSecret, writeDevVars } from "./lib/keys.mjs";

const DEV_VARS = ".dev.vars";
const WRANGLER = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");

if (!existsSync(DEV_VARS)) {
  const key = await generateSigningJwk();
  writeDevVars(DEV_VARS, { JWT_KEYS: JSON.stringify({ keys: [key] }), OTP_SECRET: randomSecret(), MAIL_API_KEY: "" });
  console.log(`[dev] wrote ${DEV_VARS} with a new development signing key (kid ${key.kid})`);
}

/** The value of `--name <v>` or `--name=<v>` in `args`, if given. */
function option(args, name) {
  const index = args.findIndex((arg) => arg === name || arg.startsWith(`${name}=`));
  if (index < 0) return undefined;
  return args[index].includes("=") ? args[index].slice(name.length + 1) : args[index + 1];
}

const start = process.argv.indexOf("--start");
const devArgs = start < 0 ? [] : process.argv.slice(start + 1);
const persistTo = option(devArgs, "--persist-to");

// Nothing local needs the network: no telemetry, and no download of the `Request.cf` sample
// (miniflare falls back to a placeholder, but would first try workers.cloudflare.com).
const env = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_LOG_PATH: process.env.WRANGLER_LOG_PATH || resolve(".wrangler/logs"),
};

execFileSync(
  process.execPath,
  [WRANGLER, "d1", "migrations", "apply", "DB", "--local", ...(persistTo ? ["--persist-to", persistTo] : [])],
  {
    stdio: "inherit",
    env: { ...env, CI: "true" }, // CI=true: apply without the interactive confirmation
  },
);

if (start >= 0) {
  // A var given on the command line overrides [vars] in wrangler.toml, for this dev server only.
  const dev = spawn(process.execPath, [WRANGLER, "dev", "--var", "ENVIRONMENT:development", ...devArgs], { stdio: "inherit", env });
  dev.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
}
