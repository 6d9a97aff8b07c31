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
import { uniqueId } from "../ids";
import { launchBrowser, SCREENSHOT_DIR } from "./browser";
import { API, pngImage, ROOT_DIR, server } from "./client";

const exec = promisify(execFile);
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const PASSWORDS = {
  alice: "lantern-orchid-4417",
  staff: "quarry-meadow-8802",
  bob: "walrus-carpenter-3141",
  carol: "dormouse-treacle-2718",
  carolAfterReset: "hatter-teacup-5530",
  dave: "gryphon-mock-turtle-77",
  erin: "caterpillar-hookah-1865",
  frankSquatter: "cheshire-grin-0042",
  frank: "queen-of-hearts-1951",
};
const run = uniqueId(...Object.values(PASSWORDS));
const alice = { username: `alice${run}`, email: `alice-${run}@example.com`, password: PASSWORDS.alice };
const staff = { email: `staff-${run}@example.com`, password: PASSWORDS.staff };
// Each address gets at most one mail a minute: the code sign-in and the reset use their own accounts.
const bob = { email: `bob-${run}@example.com`, password: PASSWORDS.bob };
const carol = { email: `carol-${run}@example.com`, password: PASSWORDS.carol };

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

async function api(method: string, path: string, body?: unknown, token?: string) {
  const res = await fetch(url(`${API}${path}`), {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

/**
 * Staff made the operator's way, and Bob and Carol registered while verification is switched
 * off, so that their first mail is the code the test asks for (one mail a minute per address).
 */
async function seedAccounts() {
  await exec(process.execPath, ["scripts/admin-create.mjs", "--email", staff.email, "--persist-to", server().stateDir], {
    cwd: ROOT_DIR,
    env: { ...process.env, LATCHKEY_ADMIN_PASSWORD: staff.password },
  });
  const token = (await api("POST", "/auth/login", { email: staff.email, password: staff.password })).json.access_token as string;
  expect((await api("PATCH", "/admin/config", { require_email_verification: false }, token)).status).toBe(200);
  try {
    for (const person of [bob, carol]) {
      // The config cache lives a few seconds per isolate: until it sees the change, delete and retry.
      for (let attempt = 0; ; attempt++) {
        const registered = await api("POST", "/auth/register", person);
        if (registered.status !== 201) throw new Error(`register ${person.email}: ${registered.status}`);
        if (registered.json.user.email_verified) break;
        if (attempt > 20) throw new Error("require_email_verification=false never took effect");
        person.email = person.email.replace(/^(\w+?)(\d*)-/, (_m, name: string, n: string) => `${name}${Number(n || 0) + 1}-`);
        await new Promise((done) => setTimeout(done, 1000));
      }
    }
  } finally {
    await api("DELETE", "/admin/config/require_email_verification", undefined, token);
  }
}

beforeAll(async () => {
  await seedAccounts();
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
    // Focus lands on the first field to fix, so keyboard and screen-reader users start there.
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe("f-password_confirm");
    await inspect(page, "registration-errors");
    expect(await page.inputValue("#f-username")).toBe(alice.username);
    await page.focus("#f-password");
    await page.keyboard.type(alice.password);
    await page.keyboard.press("Tab");
    await page.keyboard.type(alice.password);
    await page.keyboard.press("Enter");
    // The address is carried to the code page in a cookie, never in the URL (history, proxies, logs).
    await page.waitForURL(/\/verify$/);
    expect(await page.inputValue("#f-email")).toBe(alice.email);
    expect(await flash(page)).toMatch(/code/);
    await inspect(page, "verify");

    const code = await mailedCode(alice.email, "verify_email");
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe("f-code");
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

  it("saves every profile field, shows errors next to their field, and keeps markup as text", async () => {
    await inspect(page, "settings");
    await page.fill("#f-name", "Alice");
    await page.fill("#f-surname", "Liddell");
    await page.fill("#f-age", "200");
    await page.fill("#f-phone_number", "12345");
    await page.fill("#f-profession", "Explorer");
    await page.fill("#f-about_me", "<script>window.__owned = 1</script><b>bold?</b>");
    await Promise.all([page.waitForURL(/\/settings\/profile$/), page.click("text=Save profile")]);
    expect(await page.locator("#f-age-error").textContent()).toMatch(/0 to 150/);
    expect(await page.locator("#f-phone_number-error").textContent()).toMatch(/E\.164/);
    expect(await page.getAttribute("#f-age", "aria-invalid")).toBe("true");
    expect(await page.inputValue("#f-name")).toBe("Alice");
    await inspect(page, "settings-errors");
    await page.fill("#f-age", "29");
    await page.fill("#f-phone_number", "+44 20 7946 0958");
    await Promise.all([page.waitForURL(/\/settings$/), page.click("text=Save profile")]);
    expect(await flash(page)).toBe("Settings saved.");
    expect(await page.inputValue("#f-phone_number")).toBe("+442079460958");

    await page.goto(url("/profilepage"));
    const about = page.locator("dd.prose");
    expect(await about.textContent()).toBe("<script>window.__owned = 1</script><b>bold?</b>");
    expect(await page.locator("dd.prose b, dd.prose script").count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __owned?: number }).__owned)).toBeUndefined();
    for (const text of ["Alice", "Liddell", "29", "+442079460958", "Explorer", alice.email, alice.username]) {
      expect(await page.locator(".facts").textContent()).toContain(text);
    }
    expect(await page.locator(".facts time").count()).toBe(1);
  });

  it("uploads a real PNG with a preview, then shows it on the profile page", async () => {
    await page.goto(url("/settings"));
    expect(await page.locator("#f-profileimg-hint").textContent()).toMatch(/2 MiB and 4096×4096/);
    await page.setInputFiles("#f-profileimg", { name: "me.png", mimeType: "image/png", buffer: pngImage(32, [30, 120, 200]) });
    const preview = page.locator("#avatar-preview");
    await expect.poll(() => preview.isVisible()).toBe(true);
    await expect.poll(() => preview.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(32);
    await inspect(page, "settings-preview");
    await Promise.all([page.waitForURL(/\/settings$/), page.click("text=Upload picture")]);
    expect(await flash(page)).toBe("Profile picture saved.");

    // Not an image: refused with the reason next to the field.
    await page.setInputFiles("#f-profileimg", { name: "evil.png", mimeType: "image/png", buffer: Buffer.from("<svg onload=alert(1)>") });
    await Promise.all([page.waitForURL(/\/settings\/avatar$/), page.click("text=Upload picture")]);
    expect(await page.locator("#f-profileimg-error").textContent()).toBeTruthy();

    await page.goto(url("/profilepage"));
    const avatar = page.locator("img.avatar");
    await expect.poll(() => avatar.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(32);
    expect(await avatar.getAttribute("src")).toMatch(/^\/api\/v1\/profiles\/.+\/avatar\?v=/);
  });

  it("posts, edits and deletes a status", async () => {
    await page.fill("#f-content", "Down the rabbit hole <i>again</i>");
    await Promise.all([page.waitForURL(/\/profilepage$/), page.click("button:text('Post')")]);
    expect(await flash(page)).toBe("Status posted.");
    expect(await page.locator(".status .prose").first().textContent()).toBe("Down the rabbit hole <i>again</i>");
    await page.click(".status >> text=Edit");
    await inspect(page, "status-edit");
    // Two lines: the browser sends a textarea's line break as CRLF, which the API's rules refuse as a control character.
    await page.fill("#f-content", "Through the looking glass\nand what Alice found there");
    await Promise.all([page.waitForURL(/\/profilepage$/), page.click("text=Save")]);
    expect(await page.locator(".status .prose").first().textContent()).toBe("Through the looking glass\nand what Alice found there");
    await page.fill("#f-content", "A second thought");
    await Promise.all([page.waitForURL(/\/profilepage$/), page.click("button:text('Post')")]);
    await Promise.all([page.waitForURL(/\/profilepage$/), page.locator(".status").nth(0).locator("button:text('Delete')").click()]);
    expect(await flash(page)).toBe("Status deleted.");
    expect(await page.locator(".status").count()).toBe(1);
    await inspect(page, "profilepage");
  });

  it("lists the sign-in and the changes in the activity, newest first, filterable", async () => {
    await page.goto(url("/activity"));
    const rows = page.locator("tbody tr");
    const whats = await rows.locator("td[data-label=What]").allTextContents();
    expect(whats[0]).toMatch(/Status/);
    expect(whats.join("|")).toMatch(/Signed in/);
    expect(whats.join("|")).toMatch(/Profile updated/);
    expect(whats.join("|")).toMatch(/Profile picture changed/);
    expect(await rows.first().locator("time").getAttribute("datetime")).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await rows.first().locator("td[data-label=Device]").textContent()).toMatch(/Chrome/);
    await inspect(page, "activity");
    await page.selectOption("#f-type", "login");
    await Promise.all([page.waitForURL(/type=login/), page.click("button:text('Filter')")]);
    const filtered = await page.locator("tbody td[data-label=What]").allTextContents();
    expect(filtered.length).toBeGreaterThan(0);
    for (const what of filtered) expect(what).toMatch(/^Signed in/);
  });

  it("shows this browser as the current session", async () => {
    await page.goto(url("/sessions"));
    const current = page.locator(".sessions .current");
    expect(await current.count()).toBe(1);
    expect(await current.textContent()).toMatch(/This browser/);
    expect(await current.textContent()).toMatch(/Chrome/);
    await inspect(page, "sessions");
  });

  it("downloads everything stored about the account from the settings page", async () => {
    await page.goto(url("/settings"));
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=Download your data")]);
    expect(download.suggestedFilename()).toBe("latchkey-export.json");
    const exported = JSON.parse(readFileSync(await download.path(), "utf8"));
    expect(exported.account.email).toBe(alice.email);
    expect(exported.profile).toMatchObject({ name: "Alice", surname: "Liddell", profession: "Explorer" });
    expect(exported.activity.map((e: { type: string }) => e.type)).toContain("register");
    expect(exported.sessions.some((s: { user_agent: string }) => /Chrome/.test(s.user_agent))).toBe(true);
    // Nothing secret: no hash of a password, token or code anywhere in the file.
    expect(JSON.stringify(exported)).not.toMatch(/argon2|password_hash|token_hash|code_hash/);
    expect(page.url()).toMatch(/\/settings$/); // a download, not a page the browser left for
  });

  it("renews an expired access cookie from the refresh cookie, also for parallel page loads", async () => {
    const before = (await context.cookies()).find((c) => c.name === "__Host-lk_refresh")?.value;
    await context.clearCookies({ name: "__Host-lk_access" });
    const tabs = await Promise.all([context.newPage(), context.newPage(), context.newPage()]);
    await Promise.all(tabs.map((tab, i) => tab.goto(url(["/settings", "/activity", "/sessions"][i] as string))));
    for (const tab of tabs) expect(new URL(tab.url()).pathname).not.toBe("/login");
    await Promise.all(tabs.map((tab) => tab.close()));
    const after = await context.cookies();
    expect(after.find((c) => c.name === "__Host-lk_access")).toBeDefined();
    expect(after.find((c) => c.name === "__Host-lk_refresh")?.value).not.toBe(before);
    // Still one sign-in: rotation kept the session.
    await page.goto(url("/sessions"));
    expect(await page.locator(".sessions .current").count()).toBe(1);
  });

  it("refuses a cross-site form post with a readable page", async () => {
    const attacker = await context.newPage();
    await attacker.route("http://evil.test/**", (route) =>
      route.fulfill({
        contentType: "text/html",
        body: `<!doctype html><form method="post" action="${url("/settings/profile")}"><input name="name" value="pwned"><button>go</button></form>`,
      }),
    );
    await attacker.goto("http://evil.test/");
    await Promise.all([attacker.waitForURL(url("/settings/profile")), attacker.click("button")]);
    expect(await attacker.locator("h1").textContent()).toBe("Request refused");
    expect(await attacker.locator("main").textContent()).toMatch(/another website/);
    await attacker.close();
    await page.goto(url("/settings"));
    expect(await page.inputValue("#f-name")).toBe("Alice");
    // A same-site post without the form's token is refused too.
    const forged = await page.evaluate(async () => {
      const res = await fetch("/settings/profile", { method: "POST", body: new URLSearchParams({ name: "forged" }) });
      return { status: res.status, text: await res.text() };
    });
    expect(forged.status).toBe(403);
    expect(forged.text).toMatch(/expired or did not come from this site/);
  });

  it("sends security headers on every page", async () => {
    const res = await page.goto(url("/settings"));
    const headers = res?.headers() ?? {};
    expect(headers["content-security-policy"]).toMatch(/default-src 'self'/);
    expect(headers["content-security-policy"]).toMatch(/frame-ancestors 'none'/);
    expect(headers["content-security-policy"]).toMatch(/form-action 'self'/);
    expect(headers["cache-control"]).toBe("no-store");
  });

  it("asks before signing out on GET, signs out on POST, then signs in with an emailed code", async () => {
    await page.goto(url("/logout"));
    await inspect(page, "logout");
    await page.goto(url("/profilepage"));
    expect(new URL(page.url()).pathname).toBe("/profilepage");
    await Promise.all([page.waitForURL(/\/login$/), page.click("header button:text('Sign out')")]);
    expect(await flash(page)).toBe("You are signed out.");
    expect((await context.cookies()).some((c) => c.name === "__Host-lk_refresh")).toBe(false);
    await inspect(page, "login");

    await page.goto(url("/profilepage"));
    expect(page.url()).toBe(url("/login?next=%2Fprofilepage"));
    await page.click("text=Email me a code instead");
    await inspect(page, "login-code-email");
    await page.fill("#f-email", bob.email);
    await Promise.all([page.waitForURL(/\/login\/code\?step=code$/), page.click("button:text('Email me a code')")]);
    expect(await page.inputValue("#f-email")).toBe(bob.email);
    await inspect(page, "login-code");
    await page.fill("#f-code", "000000");
    await Promise.all([page.waitForURL(/\/login\/code$/), page.click("button:text('Sign in')")]);
    expect(await page.locator("#form-error").textContent()).toMatch(/wrong or has expired/);
    const code = await mailedCode(bob.email, "login");
    await page.fill("#f-code", code);
    await Promise.all([page.waitForURL(/\/profilepage$/), page.click("main button:text('Sign in')")]);
    expect(await flash(page)).toBe("You are signed in.");
    expect(await page.locator(".facts").textContent()).toContain(bob.email);
  });

  it("resets a forgotten password with an emailed code", async () => {
    await Promise.all([page.waitForURL(/\/login$/), page.click("header button:text('Sign out')")]);
    await page.click("text=Forgot your password?");
    await inspect(page, "password-forgot");
    await page.fill("#f-email", carol.email);
    await Promise.all([page.waitForURL(/\/password\/reset$/), page.click("button:text('Email me a code')")]);
    expect(await page.inputValue("#f-email")).toBe(carol.email);
    await inspect(page, "password-reset");
    const code = await mailedCode(carol.email, "reset_password");
    carol.password = PASSWORDS.carolAfterReset;
    await page.fill("#f-code", code);
    await page.fill("#f-new_password", carol.password);
    await page.fill("#f-new_password_again", carol.password);
    await Promise.all([page.waitForURL(/\/login$/), page.click("button:text('Set new password')")]);
    expect(await flash(page)).toMatch(/Password changed/);
    await page.fill("#f-identifier", carol.email);
    await page.fill("#f-password", "hatter-teacup-0000");
    await Promise.all([page.waitForURL(/\/login$/), page.click("main button:text('Sign in')")]);
    expect(await page.locator("#form-error").textContent()).toBe("The email or username and password do not match an account.");
    await inspect(page, "login-error");
    await page.fill("#f-password", carol.password);
    await Promise.all([page.waitForURL(/\/profilepage$/), page.click("main button:text('Sign in')")]);
    // Back to Alice for the rest.
    await Promise.all([page.waitForURL(/\/login$/), page.click("header button:text('Sign out')")]);
    await page.fill("#f-identifier", alice.username);
    await page.fill("#f-password", alice.password);
    await Promise.all([page.waitForURL(/\/profilepage$/), page.click("main button:text('Sign in')")]);
  });

  it("shows the public directory and profile with only public fields", async () => {
    await page.goto(url(`/people?q=${alice.username}`));
    await inspect(page, "people");
    await Promise.all([page.waitForURL(new RegExp(`/people/${alice.username}$`)), page.click(`text=Alice Liddell`)]);
    const main = (await page.locator("main").textContent()) ?? "";
    expect(main).toContain("Explorer");
    expect(main).toContain("Through the looking glass");
    expect(main).not.toContain(alice.email);
    expect(main).not.toContain("+442079460958");
    await inspect(page, "person");
  });

  it("lets staff change access_token_ttl in the console; the next API login answers the new expires_in", async () => {
    // Alice is not staff: a 403 page.
    const forbidden = await page.goto(url("/admin"));
    expect(forbidden?.status()).toBe(403);
    await inspect(page, "admin-forbidden");

    const staffContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const admin = await staffContext.newPage();
    await admin.goto(url("/admin/users"));
    expect(admin.url()).toBe(url("/login?next=%2Fadmin%2Fusers"));
    await admin.fill("#f-identifier", staff.email);
    await admin.fill("#f-password", staff.password);
    await Promise.all([admin.waitForURL(url("/admin/users")), admin.click("main button:text('Sign in')")]);
    await inspect(admin, "admin-users");

    await admin.goto(url("/admin"));
    await inspect(admin, "admin-config");
    await admin.fill("#cfg-access_token_ttl", "1");
    await Promise.all([admin.waitForURL(url("/admin/config")), admin.click("#cfg-access_token_ttl-title ~ form.inline-form button")]);
    expect(await admin.locator("#cfg-access_token_ttl-error").textContent()).toMatch(/from 5 to 86400/);
    await admin.fill("#cfg-access_token_ttl", "120");
    await Promise.all([admin.waitForURL(url("/admin")), admin.click("#cfg-access_token_ttl-title ~ form.inline-form button")]);
    expect(await flash(admin)).toBe("Configuration saved.");
    // The config cache lives a few seconds per isolate.
    await expect
      .poll(
        async () => {
          const res = await fetch(url(`${API}/auth/login`), {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ email: staff.email, password: staff.password }),
          });
          return ((await res.json()) as { expires_in: number }).expires_in;
        },
        { timeout: 20_000, interval: 1_000 },
      )
      .toBe(120);
    await Promise.all([admin.waitForURL(url("/admin")), admin.click("#cfg-access_token_ttl-title ~ form.inline button")]);
    expect(await flash(admin)).toBe("Reset to the default.");

    await admin.goto(url("/admin/audit"));
    expect(await admin.locator("tbody").textContent()).toMatch(/config\.set/);
    await inspect(admin, "admin-audit");

    // Disabling Alice ends her browser session on her next page load.
    await admin.goto(url(`/admin/users?q=${alice.username}`));
    await Promise.all([admin.waitForURL(/\/admin\/users\/[^?]+$/), admin.click(`text=${alice.email}`)]);
    await inspect(admin, "admin-user");
    await Promise.all([admin.waitForURL(/\/admin\/users\/[^/]+$/), admin.click("button:text('Disable account')")]);
    expect(await flash(admin)).toBe("Account updated.");
    await page.goto(url("/settings"));
    expect(new URL(page.url()).pathname).toBe("/login");
    await Promise.all([admin.waitForURL(/\/admin\/users\/[^/]+$/), admin.click("button:text('Enable account')")]);

    // Staff cannot disable or demote themselves: told why.
    await admin.goto(url(`/admin/users?q=${encodeURIComponent(staff.email)}`));
    await Promise.all([admin.waitForURL(/\/admin\/users\/[^?]+$/), admin.click(`text=${staff.email}`)]);
    await admin.click("button:text('Remove staff')");
    await admin.waitForLoadState();
    expect(await admin.locator("#form-error").textContent()).toMatch(/cannot remove your own staff flag/);
    await staffContext.close();
  });

  it("changes the email address with the code mailed to the new one", async () => {
    // Alice was disabled and enabled again: her sessions ended, so she signs in anew.
    await page.goto(url("/login"));
    await page.fill("#f-identifier", alice.email);
    await page.fill("#f-password", alice.password);
    await Promise.all([page.waitForURL(/\/profilepage$/), page.click("main button:text('Sign in')")]);
    await page.goto(url("/settings"));
    const newEmail = `alice-new-${run}@example.com`;
    await page.fill("#f-email", newEmail);
    await page.fill("section:has(#s-email) #f-current_password", "wrong-password-1");
    await Promise.all([page.waitForURL(/\/settings\/email$/), page.click("text=Send a code to the new address")]);
    expect(await page.locator("#form-error").textContent()).toBe("Your current password is not correct.");
    await page.fill("section:has(#s-email) #f-current_password", alice.password);
    await Promise.all([page.waitForURL(/\/settings$/), page.click("text=Send a code to the new address")]);
    expect(await flash(page)).toMatch(/emailed a code to your new address/);
    expect(await page.locator("section:has(#s-email)").textContent()).toContain(newEmail);
    await inspect(page, "settings-email-pending");
    const code = await mailedCode(newEmail, "change_email");
    await page.fill("section:has(#s-email) #f-code", code);
    await Promise.all([page.waitForURL(/\/settings$/), page.click("text=Confirm new address")]);
    expect(await flash(page)).toBe("Email address changed.");
    alice.email = newEmail;
    expect(await page.locator("section:has(#s-email)").textContent()).toContain(`Your address is ${newEmail}`);
  });

  it("ends one other session, then every other, keeping this browser", async () => {
    for (let i = 0; i < 3; i++)
      expect((await api("POST", "/auth/login", { email: alice.email, password: alice.password })).status).toBe(200);
    await page.goto(url("/sessions"));
    expect(await page.locator(".sessions > li").count()).toBe(4);
    await Promise.all([page.waitForURL(/\/sessions$/), page.locator(".sessions > li:not(.current) button").first().click()]);
    expect(await flash(page)).toBe("That session has been signed out.");
    expect(await page.locator(".sessions > li").count()).toBe(3);
    await Promise.all([page.waitForURL(/\/sessions$/), page.click("text=Sign out every other session")]);
    expect(await flash(page)).toBe("Every other session has been signed out.");
    expect(await page.locator(".sessions > li").count()).toBe(1);
    expect(await page.locator(".sessions > li.current").count()).toBe(1);
  });

  it("confirms on another device with the code and the registration's password, and sends whoever did not register to a sign-in code", async () => {
    const erin = { email: `erin-${run}@example.com`, password: PASSWORDS.erin };
    expect((await api("POST", "/auth/register", erin)).status).toBe(201);
    // A browser that did not register: the activation code alone would confirm a password
    // someone else may have chosen, so the page asks for it and offers a sign-in code instead.
    const phoneContext = await browser.newContext();
    const phone = await phoneContext.newPage();
    await phone.goto(url("/verify"));
    expect(await phone.locator("#f-password").count()).toBe(1);
    expect(await phone.locator('main a[href="/login/code"]').count()).toBe(1);
    expect(await phone.getAttribute("#f-password", "required")).not.toBeNull();
    await inspect(phone, "verify-elsewhere");
    await phone.fill("#f-email", erin.email);
    await phone.fill("#f-code", await mailedCode(erin.email, "verify_email"));
    await phone.fill("#f-password", erin.password);
    await Promise.all([phone.waitForURL(url("/settings")), phone.click("main button:text('Confirm')")]);
    expect(await flash(phone)).toMatch(/confirmed/);
    await phoneContext.close();
  });

  it("claims an address with a sign-in code, then chooses a first password with a code the settings page emails", async () => {
    // Someone registered Frank's address; Frank signs in with a code, which ends that password.
    const frank = { email: `frank-${run}@example.com`, password: PASSWORDS.frank };
    expect((await api("POST", "/auth/register", { email: frank.email, password: PASSWORDS.frankSquatter })).status).toBe(201);
    const frankContext = await browser.newContext();
    const p = await frankContext.newPage();
    await p.goto(url("/login/code"));
    await p.fill("#f-email", frank.email);
    await Promise.all([p.waitForURL(/\/login\/code\?step=code$/), p.click("main button:text('Email me a code')")]);
    await p.fill("#f-code", await mailedCode(frank.email, "login"));
    await Promise.all([p.waitForURL(/\/profilepage$/), p.click("main button:text('Sign in')")]);

    // The session alone sets no password: the page asks for a code mailed to the address.
    await p.goto(url("/settings"));
    expect(await p.locator("#s-password ~ p.hint").textContent()).toContain(frank.email);
    await Promise.all([p.waitForURL(/\/settings$/), p.click("main button:text('Email me a code')")]);
    expect(await flash(p)).toBe("We emailed you a code. Enter it below with your new password.");
    await inspect(p, "settings-first-password");
    await p.fill("#f-code", await mailedCode(frank.email, "reset_password"));
    await p.fill("#f-new_password", frank.password);
    await p.fill("#f-new_password_again", frank.password);
    await Promise.all([p.waitForURL(/\/settings$/), p.click("main button:text('Change password')")]);
    expect(await flash(p)).toMatch(/^Password changed\./);
    expect((await api("POST", "/auth/login", frank)).status).toBe(200);
    expect((await api("POST", "/auth/login", { email: frank.email, password: PASSWORDS.frankSquatter })).status).toBe(401);
    await frankContext.close();
  });

  it("lets staff mark an email verified and end every session of an account", async () => {
    const dave = { email: `dave-${run}@example.com`, password: PASSWORDS.dave };
    expect((await api("POST", "/auth/register", dave)).status).toBe(201);
    const staffContext = await browser.newContext();
    const admin = await staffContext.newPage();
    await admin.goto(url("/login?next=%2Fadmin%2Fusers"));
    await admin.fill("#f-identifier", staff.email);
    await admin.fill("#f-password", staff.password);
    await Promise.all([admin.waitForURL(url("/admin/users")), admin.click("main button:text('Sign in')")]);
    await admin.fill("#f-q", "dave-");
    await Promise.all([admin.waitForURL(/q=dave-/), admin.click("button:text('Search')")]);
    await Promise.all([admin.waitForURL(/\/admin\/users\/[^?]+$/), admin.click(`text=${dave.email}`)]);
    expect(await admin.locator(".hint").textContent()).toMatch(/ends the password it was registered with/);
    await Promise.all([admin.waitForURL(/\/admin\/users\/[^/]+$/), admin.click("button:text('Mark email verified')")]);
    expect(await admin.locator(".facts").textContent()).toMatch(/Email verifiedYes/);
    // Whoever registered the address may not own it: that password no longer signs in; the
    // mailbox's owner does, with an emailed code.
    expect((await api("POST", "/auth/login", dave)).status).toBe(401);
    expect((await api("POST", "/auth/otp", { email: dave.email, purpose: "login" })).status).toBe(202);
    const login = await api("POST", "/auth/login/otp", { email: dave.email, code: await mailedCode(dave.email, "login") });
    expect(login.status).toBe(200);
    // A status to moderate: listed on the account's page, deleted there by staff.
    const posted = await api("POST", "/statuses", { content: "Spam, spam, spam" }, login.json.access_token);
    expect(posted.status).toBe(201);
    await admin.reload();
    expect(await admin.locator(".statuses").textContent()).toContain("Spam, spam, spam");
    await Promise.all([admin.waitForURL(/\/admin\/users\/[^/]+$/), admin.click(".statuses button:text('Delete')")]);
    expect(await flash(admin)).toBe("Status deleted.");
    expect(await admin.locator(".statuses").textContent()).not.toContain("Spam, spam, spam");
    expect((await api("GET", `/statuses/${posted.json.status.id}`)).status).toBe(404);
    expect(await admin.locator(".facts").textContent()).toMatch(/Active sessions1/);
    // The POST answers with a redirect back to this page's path: wait for that page's GET.
    const reloaded = admin.waitForResponse(
      (r) => r.request().method() === "GET" && /^\/admin\/users\/[^/]+$/.test(new URL(r.url()).pathname),
    );
    await admin.click("button:text('End every session')");
    await reloaded;
    await admin.waitForLoadState();
    expect(await flash(admin)).toBe("Every session of that account has ended.");
    expect(await admin.locator(".facts").textContent()).toMatch(/Active sessions0/);
    expect((await api("POST", "/auth/refresh", { refresh_token: login.json.refresh_token })).status).toBe(401);
    await staffContext.close();
  });

  it("deletes the account with the password and the confirmation", async () => {
    await page.goto(url("/settings"));
    await Promise.all([page.waitForURL(/\/settings$/), page.click("button:text('Remove picture')")]);
    expect(await flash(page)).toBe("Profile picture removed.");
    expect(await page.locator("button:text('Remove picture')").count()).toBe(0);
    await page.fill("section:has(#s-delete) #f-current_password", alice.password);
    await Promise.all([page.waitForURL(/\/settings\/delete$/), page.click("text=Delete my account")]);
    expect(await page.locator("#f-confirm-error").textContent()).toBe("Tick the box to confirm.");
    await inspect(page, "settings-delete-error");
    await page.fill("section:has(#s-delete) #f-current_password", alice.password);
    await page.check("#f-confirm");
    await Promise.all([page.waitForURL(/\/login$/), page.click("text=Delete my account")]);
    expect(await flash(page)).toBe("Your account has been deleted.");
    expect((await api("POST", "/auth/login", { email: alice.email, password: alice.password })).status).toBe(401);
    expect((await page.goto(url(`/people/${alice.username}`)))?.status()).toBe(404);
    await inspect(page, "not-found");
  });

  it("answers every error code with a sentence", async () => {
    const { ERRORS } = await import("../../src/lib/errors");
    const { ERROR_SENTENCES } = await import("../../src/web/web.messages");
    for (const code of Object.keys(ERRORS)) expect(ERROR_SENTENCES[code as keyof typeof ERRORS], code).toMatch(/\.$/);
  });
});
