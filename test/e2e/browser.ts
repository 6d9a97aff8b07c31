/**
 * A real Chromium for the website's tests, driven by playwright-core. The browser comes from the
 * npm package @sparticuz/chromium (a Chromium build inside the package, unpacked on first use),
 * so `npm ci` is all a machine needs; CHROMIUM_PATH or a system `chromium` are used instead when
 * set or when the package cannot run here. Without any, the tests fail with one line saying how
 * to get one — never a silent skip.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { ROOT } from "./dev-server";

export const NO_BROWSER =
  "No Chromium for the website tests: run `npm ci` (installs @sparticuz/chromium), or `apt-get update && apt-get install -y chromium`, or set CHROMIUM_PATH.";

/** Screenshots of every page, desktop and phone width, rewritten each run (git-ignored). */
export const SCREENSHOT_DIR = join(ROOT, "test-screenshots");

async function candidates(): Promise<string[]> {
  const found: string[] = [];
  if (process.env.CHROMIUM_PATH) found.push(process.env.CHROMIUM_PATH);
  try {
    const packaged = (await import("@sparticuz/chromium")).default;
    found.push(await packaged.executablePath());
  } catch {
    // not installed or cannot unpack here: fall back to the system's
  }
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      found.push(execFileSync("which", [name], { encoding: "utf8" }).trim());
    } catch {
      // not on PATH
    }
  }
  return found.filter((path) => path && existsSync(path));
}

export async function launchBrowser(): Promise<Browser> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const errors: string[] = [];
  for (const executablePath of await candidates()) {
    try {
      return await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    } catch (error) {
      errors.push(`${executablePath}: ${String(error).split("\n")[0]}`);
    }
  }
  throw new Error(`${NO_BROWSER}${errors.length ? ` (tried ${errors.join("; ")})` : ""}`);
}
