/**
 * The website in a real Chromium against the real dev server: a person registers with the
 * keyboard alone, confirms the emailed code, fills in every setting, uploads a picture, posts,
 * reads their activity and sessions, signs out, signs in with a code, resets a forgotten
 * password; staff change the configuration and disable an account; a cross-site form is
 * refused. Every page is checked with axe-core and photographed at desktop and phone width.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, SCREENSHOT_DIR } from "./browser";
import { API, pngImage, ROOT_DIR, server } from "./client";

const exec = promisify(execFile);
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const run = Date.now().toString(36);
const alice = { username: `alice${run}`, email: `alice-${run}@example.com`, password: "lantern-orchid-4417" };
const staff = { email: `staff-${run}@example.com`, password: "quarry-meadow-8802" };

let browser: Browser;
let context: BrowserContext;
let page: Page;
const url = (path: string) => `${server().url}${path}`;

/** The newest code mailed to `to` for `purpose`, from the development inbox (waiting up to 5 s for it). */
async function mailedCode(to: string, purpose: string, seen: string[] = []): Promise<string> {
  for (let round = 0; round < 6; round++) {
    const res = await fetch(url(`/dev/mail?format=json&to=${encodeURIComponent(to)}&wait=5`));
    const { items } = (await res.json()) as { items: { purpose: string | null; code: string | null }[] };
    const mail = items.find((m) => m.purpose === purpose && m.code && !seen.includes(m.code));
    if (mail?.code) return mail.code;
    await new Promise((done) => setTimeout(done, 500));
  }
  throw new Error(`no ${purpose} code mailed to ${to}`);
}

/** axe-core on the page as it is: no serious or critical violation. */
async function expectAccessible(p: Page) {
  await p.evaluate(axeSource);
  const result = (await p.evaluate(() =>
    (window as unknown as { axe: { run: (o: object) => Promise<unknown> } }).axe.run({ resultTypes: ["violations"] }),
  )) as { violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] };
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)).toEqual([]);
}

/** Checks the page with axe and photographs it at desktop and phone width. */
async function inspect(p: Page, name: string) {
  await expectAccessible(p);
  await p.screenshot({ path: join(SCREENSHOT_DIR, `${name}-desktop.png`), fullPage: true });
  await p.setViewportSize({ width: 390, height: 844 });
  await p.screenshot({ path: join(SCREENSHOT_DIR, `${name}-phone.png`), fullPage: true });
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, `${name} scrolls sideways at phone width`).toBeLessThanOrEqual(1);
  await p.setViewportSize({ width: 1280, height: 800 });
}

/** Tabs until the element with `id` has focus (keyboard only, as a person without a mouse does). */
async function tabTo(p: Page, id: string) {
  for (let i = 0; i < 40; i++) {
    await p.keyboard.press("Tab");
    if ((await p.evaluate(() => document.activeElement?.id)) === id) return;
  }
  throw new Error(`Tab never reached #${id}`);
}

async function flash(p: Page) {
  return (await p.locator(".flash").textContent())?.trim();
}

beforeAll(async () => {
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
});

afterAll(async () => {
  await browser?.close();
});

describe("the website in a real browser", () => {
  it("registers with the keyboard alone and confirms the emailed code", async () => {
    await page.goto(url("/registration"));
    await inspect(page, "registration");
    await tabTo(page, "f-username");
    await page.keyboard.type(alice.username);
    await page.keyboard.press("Tab");
    await page.keyboard.type(alice.email);
    await page.keyboard.press("Tab");
    await page.keyboard.type(alice.password);
    await page.keyboard.press("Tab");
    await page.keyboard.type("not the same");
    await page.keyboard.press("Enter");
    await page.waitForLoadState();
    // The mismatch is told next to its field, announced, and the field marked invalid.
    await expect.poll(() => page.locator("#f-password_confirm-error").textContent()).toMatch(/match/);
    expect(await page.getAttribute("#f-password_confirm", "aria-invalid")).toBe("true");
    expect(await page.getAttribute("#f-password_confirm-error", "role")).toBe("alert");
    await inspect(page, "registration-errors");
    expect(await page.inputValue("#f-username")).toBe(alice.username);
    await page.focus("#f-password");
    await page.keyboard.type(alice.password);
    await page.keyboard.press("Tab");
    await page.keyboard.type(alice.password);
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/verify\?email=/);
    expect(await flash(page)).toMatch(/code/);
    await inspect(page, "verify");

    const code = await mailedCode(alice.email, "verify_email");
    await page.focus("#f-code");
    await page.keyboard.type(code);
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/settings$/);
    expect(await flash(page)).toMatch(/confirmed/);
    const cookies = await context.cookies();
    const access = cookies.find((c) => c.name === "__Host-lk_access");
    const refresh = cookies.find((c) => c.name === "__Host-lk_refresh");
    for (const cookie of [access, refresh]) {
      expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: "Lax", path: "/" });
    }
  });
});
