/**
 * The website's sessions and defences through the real app (no browser): cookies and their
 * flags, transparent rotation and the parallel-load race, sign-out, CSRF and cross-site refusal,
 * same-site return paths, staff-only pages, escaping. The browser journey is test/e2e/web.test.ts.
 */
import { env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { REFRESH_RACE_GRACE_MS } from "../../src/features/auth/tokens.service";
import { ERRORS } from "../../src/lib/errors";
import { setLogSink } from "../../src/lib/log";
import { RATE_LIMITS } from "../../src/lib/rate-limit";
import { ERROR_SENTENCES } from "../../src/web/web.messages";
import { RACE_RETRY_PAUSES_MS } from "../../src/web/web.session";
import { probeD1 } from "../d1-wrap";
import { AVATAR_CACHE_BASE, BASE, harness, unique } from "../helpers";
import { capturingEnv, codeInMail, mailsFor } from "../mail-helpers";

const h = harness();

/** A browser's cookie jar and same-site navigation, over the app's fetch handler. */
function browser(ip = "198.51.100.7", bindings: Env = env) {
  const jar = new Map<string, string>();
  async function request(method: string, path: string, form?: Record<string, string>, headers: Record<string, string> = {}) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
    const init: RequestInit = {
      method,
      redirect: "manual",
      headers: {
        "cf-connecting-ip": ip,
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/141.0 Safari/537.36",
        "sec-fetch-site": "same-origin",
        ...(cookie ? { cookie } : {}),
        ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}),
        ...headers,
      },
      body: form ? new URLSearchParams(form).toString() : undefined,
    };
    const res = await h.app.fetch(new Request(`${BASE}${path}`, init), bindings);
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";").map((s) => s.trim());
      const [name, value] = (pair ?? "").split("=") as [string, string];
      const expired = attributes.some((a) => /^max-age=0$/i.test(a) || /^expires=thu, 01 jan 1970/i.test(a));
      if (expired) jar.delete(name);
      else jar.set(name, value);
    }
    return {
      status: res.status,
      location: res.headers.get("location"),
      headers: res.headers,
      text: await res.text(),
      setCookies: res.headers.getSetCookie(),
    };
  }
  const csrfOf = (html: string) => /name="_csrf" value="([0-9a-f]{64})"/.exec(html)?.[1] ?? "";
  /** GETs `page`, then POSTs `form` with that page's token to `action`. */
  async function submit(page: string, action: string, form: Record<string, string>, headers: Record<string, string> = {}) {
    const got = await request("GET", page);
    return request("POST", action, { _csrf: csrfOf(got.text), ...form }, headers);
  }
  return { jar, request, submit, csrfOf };
}

async function signedInBrowser() {
  const user = await h.registerVerified();
  const b = browser();
  const res = await b.submit("/login", "/login", { identifier: user.email, password: user.password });
  expect(res.status).toBe(303);
  return { user, b };
}

describe("browser sign-in", () => {
  it("keeps the token pair in __Host- cookies: Secure, HttpOnly, SameSite=Lax, Path=/", async () => {
    const user = await h.registerVerified();
    const b = browser();
    const res = await b.submit("/login", "/login", { identifier: user.email, password: user.password });
    expect(res.location).toBe("/profilepage");
    const cookies = res.setCookies.filter((c) => /^__Host-lk_(access|refresh)=/.test(c));
    expect(cookies).toHaveLength(2);
    for (const c of cookies) {
      expect(c).toMatch(/; Path=\//);
      expect(c).toMatch(/; Secure/);
      expect(c).toMatch(/; HttpOnly/);
      expect(c).toMatch(/; SameSite=Lax/);
      expect(c).not.toMatch(/Domain=/i);
    }
    const page = await b.request("GET", "/profilepage");
    expect(page.status).toBe(200);
    expect(page.text).toContain(user.email);
    expect(page.text.startsWith("<!doctype html>")).toBe(true);
    expect(page.headers.get("cache-control")).toBe("no-store");
    expect(page.headers.get("content-security-policy")).toMatch(/default-src 'self';.*frame-ancestors 'none';.*form-action 'self'/);
  });

  it("is a sign-in like any other: listed in /me/sessions, ended by logout-all", async () => {
    const { user, b } = await signedInBrowser();
    const api = await h.login(user.email, user.password);
    const listed = await h.call("GET", "/api/v1/me/sessions", undefined, { token: api.access_token });
    expect(listed.json.items).toHaveLength(2);
    expect(listed.json.items.some((s: { user_agent: string }) => /Chrome/.test(s.user_agent))).toBe(true);
    expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: api.access_token })).status).toBe(204);
    // The access cookie is refused, the refresh cookie too: it was revoked, not rotated by a
    // concurrent page load, so there is no race to wait for.
    const first = await b.request("GET", "/settings");
    expect(first.location).toBe("/login?next=%2Fsettings");
    expect(b.jar.has("__Host-lk_refresh")).toBe(false);
  });

  it("rotates an expired access cookie on the next page, keeping the sign-in", async () => {
    const { b } = await signedInBrowser();
    const refreshBefore = b.jar.get("__Host-lk_refresh");
    b.jar.delete("__Host-lk_access"); // its Max-Age ran out
    const page = await b.request("GET", "/settings");
    expect(page.status).toBe(200);
    expect(b.jar.get("__Host-lk_refresh")).not.toBe(refreshBefore);
    expect(b.jar.has("__Host-lk_access")).toBe(true);
  });

  it("survives two page loads racing with the same refresh cookie: the loser retries, nothing is revoked", async () => {
    const { b } = await signedInBrowser();
    b.jar.delete("__Host-lk_access");
    const stale = new Map(b.jar);
    const winner = await b.request("GET", "/activity");
    expect(winner.status).toBe(200);
    const won = new Map(b.jar);
    // The second tab sent the old cookies: it must not clear anything, only ask to be reloaded.
    b.jar.clear();
    for (const [k, v] of stale) b.jar.set(k, v);
    const loser = await b.request("GET", "/sessions");
    expect(loser.status).toBe(302);
    expect(loser.location).toBe("/sessions");
    expect(loser.setCookies.some((c) => /__Host-lk_(access|refresh)=;/.test(c))).toBe(false);
    // By the retry the browser holds the winner's cookies, and the sign-in is intact.
    b.jar.clear();
    for (const [k, v] of won) b.jar.set(k, v);
    const retried = await b.request("GET", "/sessions");
    expect(retried.status).toBe(200);
    expect(retried.text).toContain("This browser");
    expect(REFRESH_RACE_GRACE_MS).toBeGreaterThan(0);
  });

  it("retries a lost race while the winner's cookies may be on their way, then signs out, inside the grace", async () => {
    const { b } = await signedInBrowser();
    b.jar.delete("__Host-lk_access");
    const stale = new Map(b.jar);
    expect((await b.request("GET", "/activity")).status).toBe(200);
    // This browser never receives the winner's cookies: each retry presents the old token again.
    b.jar.clear();
    for (const [k, v] of stale) b.jar.set(k, v);
    for (let i = 0; i < RACE_RETRY_PAUSES_MS.length; i++) {
      const again = await b.request("GET", "/sessions");
      expect([again.status, again.location, b.jar.get("__Host-lk_retry")]).toEqual([302, "/sessions", String(i + 1)]);
    }
    const out = await b.request("GET", "/sessions");
    expect(out.location).toBe("/login?next=%2Fsessions");
    expect(RACE_RETRY_PAUSES_MS.reduce((a, b) => a + b, 0)).toBeLessThan(REFRESH_RACE_GRACE_MS);
  });

  it("stops retrying a lost race while a retry could still land inside the grace, instead of tripping reuse detection", async () => {
    const { user, b } = await signedInBrowser();
    b.jar.delete("__Host-lk_access");
    const stale = new Map(b.jar);
    expect((await b.request("GET", "/activity")).status).toBe(200);
    b.jar.clear();
    for (const [k, v] of stale) b.jar.set(k, v);
    // 3.5 s after the winner's rotation: one more pause and round trip would reach the grace's end.
    h.clock.advance(3_500);
    expect((await b.request("GET", "/settings")).location).toBe("/settings"); // 250 ms: still in time
    expect((await b.request("GET", "/settings")).location).toBe("/login?next=%2Fsettings");
    const reuse = await env.DB.prepare("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'token_reuse_detected'")
      .bind(user.id)
      .first<{ n: number }>();
    expect(reuse?.n).toBe(0);
  });

  it("ends the sign-in a thief rotated moments before the browser, once its retries show the browser never got that token", async () => {
    const { b } = await signedInBrowser();
    b.jar.delete("__Host-lk_access");
    // Within the grace window, a thief's rotation looks like another tab of this browser.
    const thief = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: b.jar.get("__Host-lk_refresh") as string });
    expect(thief.status).toBe(200);
    for (let i = 0; i < RACE_RETRY_PAUSES_MS.length; i++) expect((await b.request("GET", "/settings")).location).toBe("/settings");
    expect((await b.request("GET", "/settings")).location).toBe("/login?next=%2Fsettings");
    expect((await h.call("GET", "/api/v1/me", undefined, { token: thief.json.access_token })).status).toBe(401);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: thief.json.refresh_token })).status).toBe(401);
  });

  it("signs out only on POST; GET /logout asks", async () => {
    const { b } = await signedInBrowser();
    const refresh = b.jar.get("__Host-lk_refresh") as string;
    const ask = await b.request("GET", "/logout");
    expect(ask.status).toBe(200);
    expect(ask.text).toContain('action="/logout"');
    expect((await b.request("GET", "/settings")).status).toBe(200);
    const out = await b.submit("/settings", "/logout", {});
    expect(out.location).toBe("/login");
    expect(b.jar.has("__Host-lk_refresh")).toBe(false);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: refresh })).status).toBe(401);
  });

  it("ends the sign-in on sign-out even when a thief already rotated the browser's refresh token", async () => {
    const { b } = await signedInBrowser();
    // A thief holding a copy of the refresh cookie uses it once; the browser's access cookie stays valid.
    const thief = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: b.jar.get("__Host-lk_refresh") as string });
    expect(thief.status).toBe(200);
    h.clock.advance(REFRESH_RACE_GRACE_MS + 5_000);
    expect((await b.request("GET", "/settings")).status).toBe(200);
    const out = await b.submit("/settings", "/logout", {});
    expect(out.location).toBe("/login");
    // The sign-in this browser left is over, the thief's copy of it included.
    expect((await h.call("GET", "/api/v1/me", undefined, { token: thief.json.access_token })).status).toBe(401);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: thief.json.refresh_token })).status).toBe(401);
  });

  it("ends the sign-in the browser held when it signs in again, as the same or another account", async () => {
    const { b } = await signedInBrowser();
    const other = await h.registerVerified();
    const first = b.jar.get("__Host-lk_refresh") as string;
    const res = await b.submit("/profilepage", "/login", { identifier: other.email, password: other.password });
    expect(res.status).toBe(303);
    expect(b.jar.get("__Host-lk_refresh")).not.toBe(first);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: first })).status).toBe(401);
    expect((await b.request("GET", "/profilepage")).text).toContain(other.email);
  });

  it("ends the sign-in the browser held when it resets a password, its own account's or another's", async () => {
    const mail = capturingEnv();
    const a = await h.registerVerified();
    const b = browser("198.51.100.7", mail.env);
    expect((await b.submit("/login", "/login", { identifier: a.email, password: a.password })).status).toBe(303);
    const held = b.jar.get("__Host-lk_refresh") as string;
    const other = await h.registerVerified();
    expect((await h.call("POST", "/api/v1/auth/otp", { email: other.email, purpose: "reset_password" }, { env: mail.env })).status).toBe(
      202,
    );
    const [sent] = await mailsFor(mail.sent, h.clock);
    const password = "a-new-password-for-b-93";
    const reset = await b.submit("/password/reset", "/password/reset", {
      email: other.email,
      code: codeInMail(sent as NonNullable<typeof sent>),
      new_password: password,
      new_password_again: password,
    });
    expect(reset.location).toBe("/login");
    expect(b.jar.has("__Host-lk_refresh")).toBe(false);
    // A's sign-in, which the browser no longer shows, is over rather than left live for its lifetime.
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: held })).status).toBe(401);
  });

  it("signing out every other session ends them as logout-all does, keeping only this browser's: a pending address change and mailed codes go too", async () => {
    const mail = capturingEnv();
    const { user, b } = await signedInBrowser();
    const thief = await h.login(user.email, user.password);
    // The thief, who has the password, starts moving the account to their address.
    const change = await h.call(
      "PATCH",
      "/api/v1/me",
      { email: `${unique("thief-")}@example.com`, current_password: user.password },
      { token: thief.access_token, env: mail.env },
    );
    expect(change.status, change.text).toBe(200);
    const code = codeInMail((await mailsFor(mail.sent, h.clock))[0] as NonNullable<Awaited<ReturnType<typeof mailsFor>>[number]>);

    const ended = await b.submit("/sessions", "/sessions/end-others", {});
    expect(ended.location).toBe("/sessions");
    expect((await b.request("GET", "/sessions")).status).toBe(200);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: thief.refresh_token })).status).toBe(401);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: thief.access_token })).status).toBe(401);
    const again = await h.login(user.email, user.password);
    expect((await h.call("POST", "/api/v1/me/email/verify", { code }, { token: again.access_token })).status).toBe(400);
    const row = await env.DB.prepare("SELECT email, pending_email FROM users WHERE id = ?").bind(user.id).first();
    expect(row).toEqual({ email: user.email, pending_email: null });
    const entries = await env.DB.prepare("SELECT type FROM activity WHERE user_id = ? AND type IN ('logout_all', 'session_revoked')")
      .bind(user.id)
      .all<{ type: string }>();
    expect(entries.results.map((e) => e.type)).toEqual(["logout_all"]);
  });

  it("forgets the remembered address of an unfinished code flow on sign-out", async () => {
    const { user, b } = await signedInBrowser();
    b.jar.set("__Host-lk_email", encodeURIComponent(user.email));
    await b.submit("/settings", "/logout", {});
    expect(b.jar.has("__Host-lk_email")).toBe(false);
  });

  it("returns to a same-site path after sign-in, never to another site", async () => {
    const user = await h.registerVerified();
    const b = browser();
    const anonymous = await b.request("GET", "/admin/users?q=a");
    expect(anonymous.location).toBe("/login?next=%2Fadmin%2Fusers%3Fq%3Da");
    for (const [next, expected] of [
      ["/settings?tab=1", "/settings?tab=1"],
      ["//evil.example/", "/profilepage"],
      ["/\\evil.example", "/profilepage"],
      ["https://evil.example/", "/profilepage"],
      ["/\u0000x", "/profilepage"],
      ["/a\u0007b", "/profilepage"],
      // A Location header carries ASCII: other characters go percent-encoded, as a browser sends them.
      ["/people/\u00e9ric", "/people/%C3%A9ric"],
      ["/people?q=\u4e2d", "/people?q=%E4%B8%AD"],
    ] as const) {
      const res = await browser().submit(`/login?next=${encodeURIComponent(next)}`, "/login", {
        identifier: user.email,
        password: user.password,
        next,
      });
      expect(`${res.status} ${res.location}`, next).toBe(`303 ${expected}`);
    }
  });
});

describe("your data", () => {
  it("downloads from /settings the same export as GET /me/export, as an uncached attachment", async () => {
    const { user, b } = await signedInBrowser();
    const api = await h.login(user.email, user.password);
    const created = await h.call("POST", "/api/v1/statuses", { content: "in my export" }, { token: api.access_token });
    expect(created.status).toBe(201);
    const settings = await b.request("GET", "/settings");
    expect(settings.text).toContain('href="/settings/export"');

    const download = await b.request("GET", "/settings/export");
    expect(download.status).toBe(200);
    expect(download.headers.get("content-type")).toMatch(/^application\/json/);
    expect(download.headers.get("content-disposition")).toBe('attachment; filename="latchkey-export.json"');
    expect(download.headers.get("cache-control")).toBe("no-store");
    const fromWebsite = JSON.parse(download.text);
    const fromApi = await h.call("GET", "/api/v1/me/export", undefined, { token: api.access_token });
    // Identical but for when each was made and the API call's own sign-in (an extra session).
    const comparable = (doc: { exported_at?: string; sessions?: unknown }) => ({ ...doc, exported_at: undefined, sessions: undefined });
    expect(comparable(fromWebsite)).toEqual(comparable(fromApi.json));
    expect(fromWebsite.account.email).toBe(user.email);
    expect(fromWebsite.statuses.map((s: { content: string }) => s.content)).toEqual(["in my export"]);
    expect(fromWebsite.sessions.length).toBeGreaterThanOrEqual(2); // the website's sign-in and the API's
  });

  it("asks a signed-out visitor to sign in first", async () => {
    const anonymous = await browser().request("GET", "/settings/export");
    expect(anonymous.location).toBe("/login?next=%2Fsettings%2Fexport");
  });
});

describe("forms", () => {
  it("refuses a cross-site post, a post without the token, and one with another origin", async () => {
    const { b } = await signedInBrowser();
    const page = await b.request("GET", "/settings");
    const csrf = b.csrfOf(page.text);
    const crossSite = await b.request("POST", "/settings/profile", { _csrf: csrf, name: "x" }, { "sec-fetch-site": "cross-site" });
    expect(crossSite.status).toBe(403);
    expect(crossSite.text).toContain("sent from another website");
    const noToken = await b.request("POST", "/settings/profile", { name: "x" });
    expect(noToken.status).toBe(403);
    expect(noToken.text).toContain("expired or did not come from this site");
    const otherOrigin = await b.request(
      "POST",
      "/settings/profile",
      { _csrf: csrf, name: "x" },
      { "sec-fetch-site": "", origin: "https://evil.example" },
    );
    expect(otherOrigin.status).toBe(403);
    const ok = await b.request("POST", "/settings/profile", { _csrf: csrf, name: "Ada" });
    expect(ok.location).toBe("/settings");
  });

  it("refuses an avatar upload from someone not signed in, or from another site, without reading its body", async () => {
    /** A 1 MiB multipart upload whose stream records whether anything pulled from it. */
    async function upload(headers: Record<string, string>, csrf = "") {
      const boundary = "lk-test-boundary";
      const parts = [
        `--${boundary}\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${csrf}\r\n`,
        `--${boundary}\r\nContent-Disposition: form-data; name="profileimg"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n`,
        "x".repeat(1024 * 1024),
        `\r\n--${boundary}--\r\n`,
      ];
      let pulled = false;
      const body = new ReadableStream<Uint8Array>(
        {
          pull(controller) {
            pulled = true;
            const next = parts.shift();
            if (next === undefined) controller.close();
            else controller.enqueue(new TextEncoder().encode(next));
          },
        },
        { highWaterMark: 0 }, // nothing is pulled until someone reads
      );
      const init = { method: "POST", headers: { "content-type": `multipart/form-data; boundary=${boundary}`, ...headers }, body };
      const res = await h.app.fetch(new Request(`${BASE}/settings/avatar`, init), env);
      return { status: res.status, text: await res.text(), pulled };
    }

    const anonymous = await upload({ "sec-fetch-site": "same-origin", "cf-connecting-ip": "198.51.100.31" });
    expect(anonymous.status).toBe(403);
    expect(anonymous.text).toContain("expired or did not come from this site");
    expect(anonymous.pulled).toBe(false);

    const { b } = await signedInBrowser();
    const cookie = [...b.jar].map(([k, v]) => `${k}=${v}`).join("; ");
    const crossSite = await upload({ "sec-fetch-site": "cross-site", cookie });
    expect(crossSite.status).toBe(403);
    expect(crossSite.text).toContain("sent from another website");
    expect(crossSite.pulled).toBe(false);

    // Signed in and same-site, the form is read: its token is checked only then, and the file after it.
    const noToken = await upload({ "sec-fetch-site": "same-origin", cookie });
    expect(noToken.status).toBe(403);
    expect(noToken.text).toContain("expired or did not come from this site");
    expect(noToken.pulled).toBe(true);
    const csrf = b.csrfOf((await b.request("GET", "/settings")).text);
    const notAnImage = await upload({ "sec-fetch-site": "same-origin", cookie }, csrf);
    expect(notAnImage.status).toBe(415);
  });

  it("sends a GET of a form's action path to the page the form is on", async () => {
    const b = browser();
    for (const [path, page] of [
      ["/settings/profile", "/settings"],
      ["/profilepage/statuses/abc", "/profilepage"],
      ["/admin/users/abc/flags", "/admin/users/abc"],
      ["/login/code/send", "/login/code"],
    ] as const) {
      const res = await b.request("GET", path);
      expect(`${res.status} ${res.location}`, path).toBe(`303 ${page}`);
    }
    const refused = await b.request("POST", "/settings/password", { new_password: "x" });
    expect(refused.text).toContain('<a href="/settings">Go back to the page</a>');
  });

  it("binds the token to the sign-in: another browser's token is refused", async () => {
    const one = await signedInBrowser();
    const two = await signedInBrowser();
    const theirs = one.b.csrfOf((await one.b.request("GET", "/settings")).text);
    const res = await two.b.request("POST", "/settings/profile", { _csrf: theirs, name: "x" });
    expect(res.status).toBe(403);
  });

  it("checks a status posted or edited on the page by the API's rules; a textarea's CRLF lines are kept as lines", async () => {
    const { user, b } = await signedInBrowser();
    const stored = async () =>
      (await env.DB.prepare("SELECT content FROM statuses WHERE user_id = ? ORDER BY created_at").bind(user.id).all<{ content: string }>())
        .results;
    for (const content of ["   ", "x".repeat(501), "null\u0000byte", "\u202eevil", "\r"]) {
      const res = await b.submit("/profilepage", "/profilepage/statuses", { content });
      expect(res.status, JSON.stringify(content)).toBe(400);
      expect(res.text).toContain('id="f-content-error"');
    }
    expect(await stored()).toEqual([]);
    const posted = await b.submit("/profilepage", "/profilepage/statuses", { content: "  first line\r\nsecond line  " });
    expect(posted.location).toBe("/profilepage");
    expect(await stored()).toEqual([{ content: "first line\nsecond line" }]);
    const id = ((await env.DB.prepare("SELECT id FROM statuses WHERE user_id = ?").bind(user.id).first()) as { id: string }).id;
    const edited = await b.submit(`/profilepage/statuses/${id}/edit`, `/profilepage/statuses/${id}`, { content: "" });
    expect(edited.status).toBe(400);
    expect(await stored()).toEqual([{ content: "first line\nsecond line" }]);
    // The same for "about me", the other textarea.
    const saved = await b.submit("/settings", "/settings/profile", { about_me: "one\r\ntwo", username: user.username });
    expect(saved.location).toBe("/settings");
    const about = await env.DB.prepare("SELECT about_me FROM profiles WHERE user_id = ?").bind(user.id).first<{ about_me: string }>();
    expect(about?.about_me).toBe("one\ntwo");
  });

  it("lets a form hold every value the API accepts: no field counting UTF-16 units caps what the API counts in characters", async () => {
    const { user, b } = await signedInBrowser();
    const api = await h.login(user.email, user.password);
    // Each at its limit in emoji: one character to the API, two UTF-16 units to a browser's maxlength.
    const profile = { name: "😀".repeat(50), surname: "😀".repeat(50), profession: "😀".repeat(100), about_me: "😀".repeat(2000) };
    expect((await h.call("PATCH", "/api/v1/me/profile", profile, { token: api.access_token })).status).toBe(200);
    const status = await h.call("POST", "/api/v1/statuses", { content: "😀".repeat(500) }, { token: api.access_token });
    expect(status.status).toBe(201);
    /** The field's tag, and whether a browser would let it hold `value` (maxlength counts UTF-16 units). */
    const admits = (html: string, name: string, value: string) => {
      const tag = new RegExp(`<(?:input|textarea)[^>]*name="${name}"[^>]*>`).exec(html)?.[0];
      expect(tag, name).toBeDefined();
      const maxlength = /maxlength="(\d+)"/.exec(tag ?? "")?.[1];
      return maxlength === undefined || value.length <= Number(maxlength);
    };
    const settings = (await b.request("GET", "/settings")).text;
    for (const [field, value] of Object.entries(profile)) {
      expect(settings, field).toContain(value);
      expect(admits(settings, field, value), field).toBe(true);
    }
    const statuses = (await b.request("GET", "/profilepage")).text;
    expect(admits(statuses, "content", status.json.status.content)).toBe(true);
    const edit = (await b.request("GET", `/profilepage/statuses/${status.json.status.id}/edit`)).text;
    expect(edit).toContain(status.json.status.content);
    expect(admits(edit, "content", status.json.status.content)).toBe(true);
    // Saved back through the forms unchanged, as a browser would submit them.
    expect((await b.submit("/settings", "/settings/profile", { ...profile, username: user.username })).location).toBe("/settings");
  });

  it("shows why a name with an invisible character is refused, next to the field, and saves nothing", async () => {
    const { user, b } = await signedInBrowser();
    const res = await b.submit("/settings", "/settings/profile", { name: "Ad\u200Ba", username: user.username });
    expect(res.status).toBe(400);
    expect(res.text).toContain("Must not contain invisible characters.");
    const saved = await env.DB.prepare("SELECT name FROM profiles WHERE user_id = ?").bind(user.id).first<{ name: string | null }>();
    expect(saved?.name).toBeNull();
  });

  it("saves a new username and the profile of one form together or not at all", async () => {
    const { user, b } = await signedInBrowser();
    const renamed = unique("renamed");
    // The profile's write fails: the rename with it does not happen either.
    const probe = probeD1(env.DB);
    probe.failWhen(/^update "profiles"/i);
    const failing = browser("198.51.100.7", { ...env, DB: probe.db } as Env);
    for (const [k, v] of b.jar) failing.jar.set(k, v);
    const res = await failing.submit("/settings", "/settings/profile", { username: renamed, name: "Ada" });
    expect(res.status).toBe(500);
    const row = await env.DB.prepare("SELECT u.username, p.name FROM users u JOIN profiles p ON p.user_id = u.id WHERE u.id = ?")
      .bind(user.id)
      .first<{ username: string; name: string | null }>();
    expect(row).toEqual({ username: user.username, name: null });
    // Without the fault both are saved, with an entry for each.
    expect((await b.submit("/settings", "/settings/profile", { username: renamed, name: "Ada" })).location).toBe("/settings");
    const saved = await env.DB.prepare("SELECT u.username, p.name FROM users u JOIN profiles p ON p.user_id = u.id WHERE u.id = ?")
      .bind(user.id)
      .first();
    expect(saved).toEqual({ username: renamed, name: "Ada" });
    const types = await env.DB.prepare("SELECT type FROM activity WHERE user_id = ? AND type IN ('username_changed', 'profile_updated')")
      .bind(user.id)
      .all<{ type: string }>();
    expect(types.results.map((r) => r.type).sort()).toEqual(["profile_updated", "username_changed"]);
  });

  it("escapes user text: markup in about-me is shown, never run", async () => {
    const { user, b } = await signedInBrowser();
    const saved = await b.submit("/settings", "/settings/profile", {
      about_me: "<script>alert(1)</script>",
      name: '"><img src=x onerror=alert(1)>',
      username: user.username,
    });
    expect(saved.location).toBe("/settings");
    const page = await b.request("GET", "/profilepage");
    expect(page.text).not.toContain("<script>alert(1)</script>");
    expect(page.text).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(page.text).not.toContain("<img src=x");
    const pub = await browser().request("GET", `/people/${user.username}`);
    expect(pub.text).toContain("&lt;script&gt;");
    expect(pub.text).not.toContain(user.email);
  });

  it("shows a flash only from its fixed list (a cookie never carries text into a page)", async () => {
    const { b } = await signedInBrowser();
    b.jar.set("__Host-lk_flash", "<b>owned</b>");
    expect((await b.request("GET", "/settings")).text).not.toContain("owned");
    b.jar.set("__Host-lk_flash", "settings_saved");
    expect((await b.request("GET", "/settings")).text).toContain("Settings saved.");
  });

  it("changing the password ends the other sign-ins and keeps this one", async () => {
    const { user, b } = await signedInBrowser();
    const other = await h.login(user.email, user.password);
    const res = await b.submit("/settings", "/settings/password", {
      current_password: user.password,
      new_password: "a-much-newer-secret-42",
      new_password_again: "a-much-newer-secret-42",
    });
    expect(res.location).toBe("/settings");
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: other.refresh_token })).status).toBe(401);
    const page = await b.request("GET", "/settings");
    expect(page.status).toBe(200);
    expect(page.text).toContain("Password changed.");
  });

  it("gives an account without a password its first one only with a code mailed to its address", async () => {
    const cap = capturingEnv();
    const user = await h.registerVerified();
    await env.DB.prepare("UPDATE users SET password_hash = '!' WHERE id = ?").bind(user.id).run();
    const b = browser("198.51.100.61", cap.env);
    const codeFor = async (purpose: string, send: () => Promise<{ status: number }>) => {
      const from = cap.sent.length;
      expect((await send()).status).toBe(303);
      const mails = await mailsFor(cap.sent.slice(from), h.clock);
      expect(mails.map((m) => m.to)).toEqual([user.email]);
      expect(cap.sent.slice(from).map((m) => m.kind === "otp" && m.purpose)).toEqual([purpose]);
      return codeInMail(mails[0] as { text: string });
    };
    const login = await codeFor("login", () => b.submit("/login/code", "/login/code/send", { email: user.email }));
    expect((await b.submit("/login/code?step=code", "/login/code", { email: user.email, code: login })).status).toBe(303);
    const NEW = "a-first-secret-of-mine-42";

    // A stolen session cookie alone no longer sets a password.
    const bare = await b.submit("/settings", "/settings/password", { new_password: NEW, new_password_again: NEW });
    expect(bare.status).toBe(400);
    expect(bare.text).toMatch(/<input[^>]*name="code"[^>]*aria-invalid="true"/);
    expect((await h.call("POST", "/api/v1/auth/login", { email: user.email, password: NEW })).status).toBe(401);

    // The owner asks for a code, which goes to the account's own address, and sets the password with it.
    const page = await b.request("GET", "/settings");
    expect(page.text).toContain('action="/settings/password/code"');
    const code = await codeFor("reset_password", () => b.submit("/settings", "/settings/password/code", {}));
    expect((await b.request("GET", "/settings")).text).toContain("We emailed you a code.");
    const wrong = code === "000000" ? "111111" : "000000";
    const refused = await b.submit("/settings", "/settings/password", { code: wrong, new_password: NEW, new_password_again: NEW });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain(ERROR_SENTENCES.invalid_code);
    const set = await b.submit("/settings", "/settings/password", { code, new_password: NEW, new_password_again: NEW });
    expect(set.location).toBe("/settings");
    expect((await b.request("GET", "/settings")).text).toContain("Password changed.");
    expect((await h.call("POST", "/api/v1/auth/login", { email: user.email, password: NEW })).status).toBe(200);
  });

  it("answers a wrong password with the generic sentence, the same for an unknown account", async () => {
    const user = await h.registerVerified();
    const wrong = await browser().submit("/login", "/login", { identifier: user.email, password: "not-the-password" });
    const unknown = await browser().submit("/login", "/login", { identifier: "nobody@example.com", password: "not-the-password" });
    for (const res of [wrong, unknown]) {
      expect(res.status).toBe(401);
      expect(res.text).toContain("The email or username and password do not match an account.");
    }
  });

  it("says when to try again when the code mail could not be queued (503), as the API does (Retry-After)", async () => {
    const user = await h.registerVerified();
    const refusing = {
      ...env,
      MAIL_QUEUE: {
        send: async () => {
          throw new Error("Queue send failed: 503");
        },
      } as unknown as Queue,
    } as Env;
    const quiet = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const b = browser("198.51.100.31", refusing);
      expect((await b.submit("/login", "/login", { identifier: user.email, password: user.password })).status).toBe(303);
      const settings = await b.submit("/settings", "/settings/password/code", {});
      const api = await h.call("POST", "/api/v1/auth/otp", { email: user.email, purpose: "reset_password" }, { env: refusing });
      expect(api.status).toBe(503);
      expect(api.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
      // Every page that mails a code answers the 503 it met (a 400 would blame the form), and says when to try again.
      const signedOut = browser("198.51.100.32", refusing);
      for (const [name, page] of [
        ["settings", settings],
        ["code sign-in", await signedOut.submit("/login/code", "/login/code/send", { email: user.email })],
        ["forgotten password", await signedOut.submit("/password/forgot", "/password/forgot", { email: user.email })],
        ["activation code", await signedOut.submit("/verify", "/verify/resend", { email: user.email })],
      ] as const) {
        expect(page.status, name).toBe(503);
        expect(page.text, name).toContain(ERROR_SENTENCES.service_unavailable);
        expect(page.headers.get("retry-after"), name).toBe(api.headers.get("retry-after"));
      }
    } finally {
      quiet.mockRestore();
    }
  });

  it("says when to try again on a rate-limited page, as the API does (Retry-After)", async () => {
    const user = await h.registerVerified();
    const b = browser();
    for (let i = 0; i < 10; i++) {
      expect((await b.submit("/login", "/login", { identifier: user.email, password: "not-the-password" })).status).toBe(401);
    }
    const limited = await b.submit("/login", "/login", { identifier: user.email, password: user.password });
    expect(limited.status).toBe(429);
    const api = await h.call("POST", "/api/v1/auth/login", { email: user.email, password: user.password });
    expect(api.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(limited.headers.get("retry-after")).toBe(api.headers.get("retry-after"));
  });
});

describe("the public people pages", () => {
  it("cannot be taken over by a username that spells an account's id: /people/{id} never shows someone else", async () => {
    // An account without a username is linked as /people/{its id}; usernames are compared in any case.
    const victim = await h.call("POST", "/api/v1/auth/register", {
      email: `${unique("victim")}@example.com`,
      password: "victims-own-secret-9",
    });
    const victimId = victim.json.user.id as string;
    expect(victimId).not.toBe(victimId.toLowerCase()); // an id has capitals (all but about 1 in 100,000)
    await env.DB.prepare("UPDATE users SET email_verified = 1 WHERE id = ?").bind(victimId).run();
    const impostor = await h.signedInUser();
    await env.DB.prepare("UPDATE profiles SET name = 'Impostor' WHERE user_id = ?").bind(impostor.id).run();
    expect((await h.call("PATCH", "/api/v1/me", { username: victimId.toLowerCase() }, { token: impostor.access_token })).status).toBe(200);
    const b = browser("198.51.100.79");
    expect((await b.request("GET", `/people/${victimId}`)).text).not.toContain("Impostor");
    // Once the victim is out of public view, their address is a 404, not the impostor's page.
    await env.DB.prepare("UPDATE users SET is_active = 0 WHERE id = ?").bind(victimId).run();
    const gone = await b.request("GET", `/people/${victimId}`);
    expect(gone.status).toBe(404);
    expect(gone.text).not.toContain("Impostor");
    // The impostor's own name still finds them, in any case.
    expect((await b.request("GET", `/people/${victimId.toLowerCase()}`)).text).toContain("Impostor");
  });

  it("limit each client IP, one allowance for the directory and its profiles, with a 429 page and Retry-After", async () => {
    const user = await h.registerVerified();
    const { limit, windowMs } = RATE_LIMITS.directoryReadsPerIp;
    const b = browser("198.51.100.77");
    for (let i = 0; i < limit; i++) {
      const res = await b.request("GET", i % 2 === 0 ? "/people" : `/people/${user.username}`);
      expect(res.status).toBe(200);
    }
    for (const path of ["/people", `/people/${user.username}`]) {
      const limited = await b.request("GET", path);
      expect(limited.status, path).toBe(429);
      expect(limited.headers.get("content-type")).toMatch(/^text\/html/);
      expect(limited.text).toContain(ERROR_SENTENCES.rate_limited);
      const wait = Number(limited.headers.get("retry-after"));
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(windowMs / 1000);
    }
    expect((await browser("198.51.100.78").request("GET", "/people")).status).toBe(200);
    h.clock.advance(windowMs);
    expect((await b.request("GET", `/people/${user.username}`)).status).toBe(200);
  });
});

describe("sign-in pages", () => {
  it("sends an unverified account to /verify, only after the right password, where its code signs that browser in", async () => {
    const mail = capturingEnv();
    const email = `${unique("unverified-")}@example.com`;
    const password = "Tr0ub4dor&3-horse";
    expect((await h.call("POST", "/api/v1/auth/register", { email, password }, { env: mail.env })).status).toBe(201);
    const wrong = await browser().submit("/login", "/login", { identifier: email, password: "not-the-password" });
    expect(wrong.status).toBe(401);
    const b = browser("198.51.100.7", mail.env);
    const right = await b.submit("/login", "/login", { identifier: email, password });
    expect(right.location).toBe("/verify");
    expect((await b.request("GET", "/verify")).text).toContain(`value="${email}"`);
    const [sent] = await mailsFor(mail.sent, h.clock);
    const verified = await b.submit("/verify", "/verify", { email, code: codeInMail(sent as NonNullable<typeof sent>) });
    expect(verified.location).toBe("/settings");
    expect(b.jar.has("__Host-lk_access")).toBe(true);
  });

  it("confirms with the activation code alone only in the browser that registered or proved the password; elsewhere it also takes the password", async () => {
    const mail = capturingEnv();
    const password = "Squatter-pa55word!";
    async function registerIn(b: ReturnType<typeof browser>) {
      const email = `${unique("victim-")}@example.com`;
      const from = mail.sent.length;
      const reg = await b.submit("/registration", "/registration", {
        username: unique("reg"),
        email,
        password,
        password_confirm: password,
      });
      expect(reg.location).toBe("/verify");
      const [sent] = await mailsFor(mail.sent.slice(from), h.clock);
      return { email, code: codeInMail(sent as NonNullable<typeof sent>) };
    }
    const verifiedFlag = (email: string) => env.DB.prepare("SELECT email_verified FROM users WHERE email = ?").bind(email).first();

    // Someone registers an address they do not own; its owner gets the activation code and enters
    // it in their own browser. The page asks for the password chosen at registration, which the
    // owner does not know: nothing is confirmed, and the page points to a sign-in code instead.
    const squatted = await registerIn(browser("198.51.100.66", mail.env));
    const owner = browser("198.51.100.77", mail.env);
    const form = await owner.request("GET", "/verify");
    expect(form.text).toContain('name="password"');
    expect(form.text).toContain('href="/login/code"');
    const codeOnly = await owner.submit("/verify", "/verify", { email: squatted.email, code: squatted.code });
    expect(codeOnly.status).toBe(400);
    expect(codeOnly.text).toContain('aria-invalid="true"');
    const guessed = await owner.submit("/verify", "/verify", { email: squatted.email, code: squatted.code, password: "a-guess-at-it-12" });
    expect(guessed.status).toBe(401);
    expect(owner.jar.has("__Host-lk_access")).toBe(false);
    expect(await verifiedFlag(squatted.email)).toEqual({ email_verified: 0 });

    // The registrant's own browser needs only the code, and is signed in by it.
    const registrant = browser("198.51.100.88", mail.env);
    const own = await registerIn(registrant);
    expect((await registrant.request("GET", "/verify")).text).not.toContain('name="password"');
    expect((await registrant.submit("/verify", "/verify", { email: own.email, code: own.code })).location).toBe("/settings");
    expect(registrant.jar.has("__Host-lk_access")).toBe(true);

    // On another device the registrant gives the password with the code, and is signed in there.
    const elsewhere = await registerIn(browser("198.51.100.99", mail.env));
    const phone = browser("198.51.100.100", mail.env);
    expect((await phone.submit("/verify", "/verify", { email: elsewhere.email, code: elsewhere.code, password })).location).toBe(
      "/settings",
    );
    expect(phone.jar.has("__Host-lk_access")).toBe(true);
    expect(await verifiedFlag(elsewhere.email)).toEqual({ email_verified: 1 });
  });

  it("keeps the address out of the code pages' URLs: a short-lived cookie carries it to the next page", async () => {
    const user = await h.registerVerified();
    const email = `${unique("signup-")}@example.com`;
    const flows: { page: string; action: string; form: Record<string, string>; next: string; email: string }[] = [
      { page: "/login/code", action: "/login/code/send", form: { email: user.email }, next: "/login/code?step=code", email: user.email },
      { page: "/password/forgot", action: "/password/forgot", form: { email: user.email }, next: "/password/reset", email: user.email },
      {
        page: "/registration",
        action: "/registration",
        form: { username: unique("signup"), email, password: "Tr0ub4dor&3-horse", password_confirm: "Tr0ub4dor&3-horse" },
        next: "/verify",
        email,
      },
    ];
    for (const flow of flows) {
      const b = browser();
      const sent = await b.submit(flow.page, flow.action, flow.form);
      expect(`${sent.status} ${sent.location}`, flow.action).toBe(`303 ${flow.next}`);
      const cookie = sent.setCookies.find((c) => c.startsWith("__Host-lk_email="));
      expect(cookie, flow.action).toMatch(/; Max-Age=1800; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
      const next = await b.request("GET", flow.next);
      expect(next.text, flow.next).toContain(`value="${flow.email}"`);
      // A visitor without the cookie (another browser, or after it expired) types the address.
      expect((await browser().request("GET", flow.next)).text).not.toContain(flow.email);
    }
  });

  it("forgets the remembered address once the code has signed the browser in", async () => {
    const user = await h.registerVerified();
    const mail = capturingEnv();
    const b = browser(undefined, mail.env);
    await b.submit("/login/code", "/login/code/send", { email: user.email });
    expect(b.jar.has("__Host-lk_email")).toBe(true);
    const [sent] = await mailsFor(mail.sent, h.clock);
    const code = codeInMail(sent as NonNullable<typeof sent>);
    const signedIn = await b.submit("/login/code?step=code", "/login/code", { email: user.email, code });
    expect(signedIn.location).toBe("/profilepage");
    expect(b.jar.has("__Host-lk_email")).toBe(false);
  });

  it("answers a code request the same for an unknown address", async () => {
    const user = await h.registerVerified();
    for (const path of ["/login/code/send", "/password/forgot"]) {
      const known = await browser().submit(path === "/password/forgot" ? path : "/login/code", path, { email: user.email });
      const unknown = await browser().submit(path === "/password/forgot" ? path : "/login/code", path, {
        email: "nobody-here@example.com",
      });
      expect(known.status).toBe(303);
      expect(unknown.status).toBe(303);
      expect(known.location).toBe(unknown.location);
      // The same cookies too: the address is remembered whether or not it has an account.
      const cookies = (res: { setCookies: string[] }, email: string) =>
        res.setCookies.map((c) => c.replace(encodeURIComponent(email), "X"));
      expect(cookies(known, user.email)).toEqual(cookies(unknown, "nobody-here@example.com"));
      expect(cookies(known, user.email).some((c) => c.startsWith("__Host-lk_email=X;"))).toBe(true);
    }
  });
});

describe("admin console", () => {
  it("sends a GET of any form's action path to the page the form is on, never back to itself", async () => {
    const routes = h.app.routes.filter((r) => !/^\/(api|dev|\.well-known)\//.test(r.path) && r.path !== "/*");
    const actions = [...new Set(routes.filter((r) => r.method === "POST").map((r) => r.path))];
    expect(actions.length).toBeGreaterThan(10);
    for (const action of actions) {
      const path = action.replace(/:[^/]+/g, "abc");
      const res = await browser().request("GET", path);
      if (res.status === 200) continue; // a page whose form posts to itself
      expect(res.status, path).toBe(303);
      expect(new URL(res.location as string, BASE).pathname, path).not.toBe(path);
    }
  });

  it("keeps a form path's encoded segments encoded on the way to its page: a line break in one is no 500", async () => {
    for (const path of ["/admin/users/%0d%0aX/flags", "/admin/users/a%0aSet-Cookie:%20x=1/statuses/b%0d/delete"]) {
      const res = await browser().request("GET", path);
      expect(res.status, path).toBe(303);
      expect(res.location, path).not.toMatch(/[\r\n]/);
      expect(res.setCookies.join(), path).not.toContain("x=1");
    }
    expect((await browser().request("GET", "/admin/users/%0d%0aX/flags")).location).toBe("/admin/users/%0D%0AX");
    // A form path spelt with escapes goes to the form's page too, never back to itself.
    for (const [path, to] of [
      ["/login/code/%73end", "/login/code"],
      ["/verify/re%73end", "/verify"],
      ["/admin/%63onfig", "/admin"],
    ]) {
      expect((await browser().request("GET", path as string)).location, path).toBe(to);
    }
  });

  it("is staff only: a 403 page for others, refusing self-demotion with the reason", async () => {
    const { user, b } = await signedInBrowser();
    expect((await b.request("GET", "/admin")).status).toBe(403);
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(user.id).run();
    const config = await b.request("GET", "/admin");
    expect(config.status).toBe(200);
    expect(config.text).toContain("access_token_ttl");
    const bad = await b.submit("/admin", "/admin/config", { key: "otp_ttl", value: "5" });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain("Must be from 60 to 86400");
    const self = await b.submit(`/admin/users/${user.id}`, `/admin/users/${user.id}/flags`, { field: "is_staff", value: "false" });
    expect(self.status).toBe(409);
    expect(self.text).toContain("You cannot remove your own staff flag");
  });

  it("refuses, with the reason, removing staff when no other active staff account would remain", async () => {
    // The rule counts every account in the database this file's tests share: these two are its only staff.
    await env.DB.prepare("UPDATE users SET is_staff = 0 WHERE is_staff = 1").run();
    const probe = probeD1(env.DB);
    const moderator = await h.registerVerified();
    const b = browser("198.51.100.7", { ...env, DB: probe.db });
    expect((await b.submit("/login", "/login", { identifier: moderator.email, password: moderator.password })).status).toBe(303);
    const other = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id IN (?, ?)").bind(moderator.id, other.id).run();
    // The other staff member removes the moderator's staff flag after the console read both as staff, before its write.
    let raced = false;
    probe.beforeBatch(async (statements) => {
      if (raced || !statements.some((sql) => sql.startsWith('insert into "admin_audit"'))) return;
      raced = true;
      const first = await h.call("PATCH", `/api/v1/admin/users/${moderator.id}`, { is_staff: false }, { token: other.access_token });
      expect(first.status, first.text).toBe(200);
    });
    const res = await b.submit(`/admin/users/${other.id}`, `/admin/users/${other.id}/flags`, { field: "is_staff", value: "false" });
    expect(raced).toBe(true);
    expect(res.status).toBe(409);
    expect(res.text).toContain(ERROR_SENTENCES.last_staff);
    const row = await env.DB.prepare("SELECT is_staff FROM users WHERE id = ?").bind(other.id).first();
    expect(row?.is_staff).toBe(1);
  });

  it("names in the audit trail a staff member whose account is gone by their address then, and the operator's CLI as such", async () => {
    const { user: moderator, b } = await signedInBrowser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(moderator.id).run();
    const newest = Date.now() + 300 * 365 * 86_400_000; // after every other test's entries: on the trail's first page
    const entry = env.DB.prepare(
      "INSERT INTO admin_audit (id, actor_id, actor_email, created_at, action, target) VALUES (?, NULL, ?, ?, 'config.set', 'otp_ttl')",
    );
    await env.DB.batch([entry.bind(unique("a"), "gone@example.com", newest), entry.bind(unique("a"), null, newest + 1)]);
    const trail = await b.request("GET", "/admin/audit");
    expect(trail.status).toBe(200);
    expect(trail.text).toContain("gone@example.com (account deleted)");
    expect(trail.text).toContain("operator (CLI)");
  });

  it("refuses, with the reason, the only active staff account deleting itself in its settings", async () => {
    await env.DB.prepare("UPDATE users SET is_staff = 0 WHERE is_staff = 1").run();
    const { user: last, b } = await signedInBrowser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(last.id).run();
    const res = await b.submit("/settings", "/settings/delete", { current_password: last.password, confirm: "yes" });
    expect(res.status).toBe(409);
    expect(res.text).toContain(ERROR_SENTENCES.last_staff);
    expect(await env.DB.prepare("SELECT is_staff FROM users WHERE id = ?").bind(last.id).first()).toEqual({ is_staff: 1 });
  });

  it("lists an account's statuses, also once it is disabled, and lets staff delete one as the API does", async () => {
    const { user: moderator, b } = await signedInBrowser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(moderator.id).run();
    const member = await h.signedInUser();
    const posted = [];
    for (const content of ["first <b>post</b>", "second post"]) {
      const res = await h.call("POST", "/api/v1/statuses", { content }, { token: member.access_token });
      expect(res.status).toBe(201);
      posted.push(res.json.status.id as string);
      h.clock.advance(1000);
    }
    await env.DB.prepare("UPDATE users SET is_active = 0 WHERE id = ?").bind(member.id).run();
    const userPage = await b.request("GET", `/admin/users/${member.id}`);
    expect(userPage.text).toContain("second post");
    expect(userPage.text).toContain("first &lt;b&gt;post&lt;/b&gt;");
    expect(userPage.text.indexOf("second post")).toBeLessThan(userPage.text.indexOf("first &lt;b&gt;"));

    const deleted = await b.submit(`/admin/users/${member.id}`, `/admin/users/${member.id}/statuses/${posted[0]}/delete`, {});
    expect(deleted.location).toBe(`/admin/users/${member.id}`);
    const after = await b.request("GET", `/admin/users/${member.id}`);
    expect(after.text).toContain("Status deleted.");
    expect(after.text).not.toContain("first &lt;b&gt;");
    const history = await env.DB.prepare("SELECT details, ip FROM activity WHERE user_id = ? AND type = 'status_deleted'")
      .bind(member.id)
      .all<{ details: string; ip: string | null }>();
    expect(history.results.map((r) => [JSON.parse(r.details), r.ip])).toEqual([[{ status_id: posted[0], by: "staff" }, null]]);
    const audit = await env.DB.prepare("SELECT actor_id, action, old_value FROM admin_audit WHERE target = ?").bind(posted[0]).all();
    expect(audit.results).toEqual([
      { actor_id: moderator.id, action: "status.delete", old_value: JSON.stringify({ user_id: member.id, content: "first <b>post</b>" }) },
    ]);

    // Gone already: the page says so, and nothing else changes.
    const again = await b.submit(`/admin/users/${member.id}`, `/admin/users/${member.id}/statuses/${posted[0]}/delete`, {});
    expect(again.status).toBe(404);
  });

  it("refuses a status deletion from someone who is not staff", async () => {
    const { b } = await signedInBrowser();
    const member = await h.signedInUser();
    const status = await h.call("POST", "/api/v1/statuses", { content: "mine" }, { token: member.access_token });
    const page = await b.request("GET", "/profilepage");
    const id = status.json.status.id as string;
    const refused = await b.request("POST", `/admin/users/${member.id}/statuses/${id}/delete`, { _csrf: b.csrfOf(page.text) });
    expect(refused.status).toBe(403);
    expect((await h.call("GET", `/api/v1/statuses/${id}`)).status).toBe(200);
  });

  it("disabling an account from the console purges its avatar from the edge cache", async () => {
    const { user, b } = await signedInBrowser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(user.id).run();
    const member = await h.signedInUser();
    // A 1×1 GIF.
    const gif = Uint8Array.from([
      0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0, 0x80, 0, 0, 0xff, 0xff, 0xff, 0, 0, 0, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1,
      0, 0x3b,
    ]);
    const uploaded = await h.call("PUT", "/api/v1/me/avatar", undefined, {
      token: member.access_token,
      raw: gif,
      headers: { "content-type": "image/gif" },
    });
    expect(uploaded.status, uploaded.text).toBe(200);
    const url: string = uploaded.json.avatar_url;
    expect((await h.call("GET", url)).status).toBe(200);
    expect(await caches.default.match(`${AVATAR_CACHE_BASE}${url}`)).toBeTruthy();
    const res = await b.submit(`/admin/users/${member.id}`, `/admin/users/${member.id}/flags`, { field: "is_active", value: "false" });
    expect(res.status).toBe(303);
    expect(await caches.default.match(`${AVATAR_CACHE_BASE}${url}`)).toBeUndefined();
    expect((await h.call("GET", url)).status).toBe(404);
  });
});

it("logs a page's unexpected failure as the API does, one error line with the request id and the route's pattern, never its path", async () => {
  const user = await h.registerVerified();
  const probe = probeD1(env.DB);
  probe.failWhen(/from "users"/);
  const lines: Record<string, unknown>[] = [];
  const restore = setLogSink((_level, line) => lines.push(JSON.parse(line)));
  try {
    const res = await h.app.fetch(new Request(`${BASE}/people/${user.username}`), { ...env, DB: probe.db });
    expect(res.status).toBe(500);
    const errors = lines.filter((l) => l.event === "error");
    expect(errors).toEqual([
      expect.objectContaining({ level: "error", method: "GET", route: "/people/:key", request_id: expect.any(String) }),
    ]);
    expect(JSON.stringify(lines)).not.toContain(user.username);
  } finally {
    restore();
  }
});

it("has a sentence for every error code", () => {
  for (const code of Object.keys(ERRORS) as (keyof typeof ERRORS)[]) expect(ERROR_SENTENCES[code]).toMatch(/\.$/);
});
