/**
 * A real Chromium for the website's tests, driven by playwright-core (see scripts/lib/browser.mjs
 * for where it comes from). Without one the tests fail with one line saying how to get one —
 * never a silent skip.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { launchBrowser as launch } from "../../scripts/lib/browser.mjs";
import { ROOT } from "./dev-server";

/** Screenshots of every page, desktop and phone width, rewritten each run (git-ignored). */
export const SCREENSHOT_DIR = join(ROOT, "test-screenshots");

export async function launchBrowser(): Promise<Browser> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return launch();
}
