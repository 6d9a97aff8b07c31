// `npm run dev`: prepares a fresh clone for `wrangler dev` without any manual step or network
// access — generates .dev.vars (a development signing key set and OTP secret) when it is missing,
// applies the D1 migrations to the local database — then starts `wrangler dev`.
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
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

if (process.argv.includes("--start")) {
  const dev = spawn("npx", ["wrangler", "dev", ...devArgs], {
    stdio: "inherit",
    env: offline,
  });
  dev.on("exit", (code) => process.exit(code ?? 0));
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
}
