// Builds the production bundle (`wrangler deploy --dry-run --minify`) and fails when the worker
// script is over its gzip budget. Static assets (the docs UI) are not part of the script.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { offlineEnv } from "./lib/offline.mjs";

const BUDGET_BYTES = 200 * 1024;
const outdir = mkdtempSync(join(tmpdir(), "latchkey-bundle-"));
execFileSync("npx", ["wrangler", "deploy", "--dry-run", "--minify", "--outdir", outdir], {
  stdio: ["ignore", "ignore", "inherit"],
  env: offlineEnv(),
});
let total = 0;
for (const file of readdirSync(outdir)) {
  if (file.endsWith(".map") || file.endsWith(".md")) continue;
  total += gzipSync(readFileSync(join(outdir, file)), { level: 9 }).length;
}
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
console.log(`bundle: ${kb(total)} gzipped (budget ${kb(BUDGET_BYTES)})`);
if (total > BUDGET_BYTES) {
  console.error("bundle over budget");
  process.exit(1);
}
