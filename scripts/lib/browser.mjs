// Finds and starts a Chromium for the website's tests (test/e2e/web.test.ts) and for
// scripts/browser-check.mjs. First the one inside the npm package @sparticuz/chromium (unpacked
// to the temporary directory on first use; `npm ci` is all it needs), then CHROMIUM_PATH, then a
// system chromium (`apt-get install -y chromium`, which .ci/run installs when the packaged one
// cannot run on the machine).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

export const NO_BROWSER =
  "No Chromium for the website tests: run `npm ci` (installs @sparticuz/chromium), or `apt-get update && apt-get install -y chromium`, or set CHROMIUM_PATH.";

async function candidates() {
  const found = [];
  if (process.env.CHROMIUM_PATH) found.push(process.env.CHROMIUM_PATH);
  try {
    const packaged = (await import("@sparticuz/chromium")).default;
    found.push(await packaged.executablePath());
  } catch {
    // not installed, or it cannot unpack here: the system's is next
  }
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      found.push(execFileSync("which", [name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
    } catch {
      // not on PATH
    }
  }
  return found.filter((path) => path && existsSync(path));
}

/** A started headless Chromium; throws one line (NO_BROWSER and what was tried) when none starts. */
export async function launchBrowser() {
  const errors = [];
  for (const executablePath of await candidates()) {
    try {
      return await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    } catch (error) {
      errors.push(`${executablePath}: ${String(error).split("\n")[0]}`);
    }
  }
  throw new Error(`${NO_BROWSER}${errors.length ? ` (tried ${errors.join("; ")})` : ""}`);
}
