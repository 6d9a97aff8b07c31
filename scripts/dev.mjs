// `npm run dev`: prepares a fresh clone for `wrangler dev` without any manual step or network
// access — generates .dev.vars (a development signing key set and OTP secret) when it is missing,
// applies the D1 migrations to the local database — then starts `wrangler dev`.
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { generateSigningJwk, randomSecret, writeDevVars } from "./lib/keys.mjs";

const DEV_VARS = ".dev.vars";

if (!existsSync(DEV_VARS)) {
  const key = await generateSigningJwk();
  writeDevVars(DEV_VARS, { JWT_KEYS: JSON.stringify({ keys: [key] }), OTP_SECRET: randomSecret(), MAIL_API_KEY: "" });
  console.log(`[dev] wrote ${DEV_VARS} with a new development signing key (kid ${key.kid})`);
}

// Nothing local needs the network: no telemetry, and no download of the `Request.cf` sample
// (miniflare falls back to a placeholder, but would first try workers.cloudflare.com).
const offline = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };

execFileSync("npx", ["wrangler", "d1", "migrations", "apply", "DB", "--local"], {
  stdio: "inherit",
  env: { ...offline, CI: "true" }, // CI=true: apply without the interactive confirmation
});

if (process.argv.includes("--start")) {
  const dev = spawn("npx", ["wrangler", "dev", ...process.argv.slice(process.argv.indexOf("--start") + 1)], {
    stdio: "inherit",
    env: offline,
  });
  dev.on("exit", (code) => process.exit(code ?? 0));
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => dev.kill(signal));
}
