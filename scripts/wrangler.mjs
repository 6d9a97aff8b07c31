// `node scripts/wrangler.mjs <args>`: wrangler with the repo's offline defaults (no usage metrics,
// no Request.cf download; see lib/offline.mjs). The npm scripts that run wrangler (build, types,
// deploy) go through this, so none of them reaches Cloudflare unless it is meant to.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { offlineEnv } from "./lib/offline.mjs";

const WRANGLER = createRequire(import.meta.url).resolve("wrangler/bin/wrangler.js");
const child = spawn(process.execPath, [WRANGLER, ...process.argv.slice(2)], { stdio: "inherit", env: offlineEnv() });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
