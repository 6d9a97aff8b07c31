// Prepares a fresh clone for `wrangler dev` without any manual step or network access:
// generates .dev.vars (a development signing key set and OTP secret) when it is missing, and
// applies the D1 migrations to the local database.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { generateSigningJwk, randomSecret, writeDevVars } from "./lib/keys.mjs";

const DEV_VARS = ".dev.vars";

if (!existsSync(DEV_VARS)) {
  const key = await generateSigningJwk();
  writeDevVars(DEV_VARS, { JWT_KEYS: JSON.stringify({ keys: [key] }), OTP_SECRET: randomSecret(), MAIL_API_KEY: "" });
  console.log(`[dev-setup] wrote ${DEV_VARS} with a new development signing key (kid ${key.kid})`);
}

execFileSync("npx", ["wrangler", "d1", "migrations", "apply", "DB", "--local"], {
  stdio: "inherit",
  env: { ...process.env, CI: "true" }, // CI=true: apply without the interactive confirmation
});
