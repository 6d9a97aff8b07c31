import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createBackgroundDeps } from "../../src/deps";
import { runRetention, scheduledRetention } from "../../src/features/activity/activity.retention";
import { REFRESH_RACE_GRACE_MS } from "../../src/features/auth/tokens.service";
import worker from "../../src/index";
import { randomId } from "../../src/lib/crypto";
import { probeD1 } from "../d1-wrap";
import { decodeJwt, harness, setConfig, unique } from "../helpers";
import { capturingEnv, codeInMail, mailsFor } from "../mail-helpers";

const DAY = 86_400_000;
const NEW_PASSWORD = "a-different-Passphrase-77";

interface Entry {
  id: string;
  type: string;
  created_at: string;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
}

type Harness = ReturnType<typeof harness>;

/** Every entry the user can see, following next_cursor page by page. */
async function allEntries(h: Harness, token: string, query = ""): Promise<Entry[]> {
  const out: Entry[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 50; page++) {
    const sep = query ? "&" : "";
    const res = await h.call("GET", `/api/v1/me/activity?${query}${sep}limit=100${cursor ? `&cursor=${cursor}` : ""}`, undefined, {
      token,
    });
    expect(res.status).toBe(200);
    out.push(...res.json.items);
    cursor = res.json.next_cursor;
    if (!cursor) break;
  }
  return out;
}

const types = (entries: Entry[]) => entries.map((e) => e.type);

async function countRows(table: string, userId: string) {
  const row = await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE user_id = ?`).bind(userId).first<{ n: number }>();
  return row?.n ?? 0;
}

/** A real 2×2 GIF89a (one 1×1 frame), enough for the avatar checks. */
const GIF = Uint8Array.from([
  ...[0x47, 0x49, 0x46, 0x38, 0x39, 0x61], // "GIF89a"
  ...[2, 0, 2, 0, 0x80, 0, 0],
  ...[0, 0, 0, 255, 255, 255],
  ...[0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0],
  ...[2, 2, 0x44, 0x01, 0],
  0x3b,
]);

describe("GET /me/activity: each event, recorded by the action itself", () => {
  const h = harness();
  const cap = capturingEnv();

  afterEach(async () => {
    await setConfig("require_email_verification", undefined);
  });

  /** A signed-in user whose register and login entries are a millisecond apart (ties order by id). */
  async function signedIn() {
    const u = await h.registerVerified();
    h.clock.advance(1);
    const tokens = await h.login(u.email, u.password);
    h.clock.advance(1);
    return { ...u, ...tokens };
  }

  it("records register and a password login with its session, IP and a user agent cut to 256 characters", async () => {
    const u = await h.registerVerified();
    h.clock.advance(1);
    const ua = `Browser/1.0 ${"x".repeat(400)}`;
    const tokens = await h.login(u.email, u.password, { headers: { "cf-connecting-ip": "198.51.100.23", "user-agent": ua } });
    const entries = await allEntries(h, tokens.access_token);
    expect(types(entries)).toEqual(["login", "register"]);
    const login = entries[0] as Entry;
    expect(login.ip).toBe("198.51.100.23");
    expect(login.user_agent).toBe(ua.slice(0, 256));
    expect(login.details).toEqual({ method: "password", session_id: decodeJwt(tokens.access_token).payload.sid });
    expect(Object.keys(login).sort()).toEqual(["created_at", "details", "id", "ip", "type", "user_agent"]);
    expect(login.created_at).toBe(new Date(h.clock.now()).toISOString());
  });

  it("records login_failed for a wrong password, nothing for a malformed login body", async () => {
    const u = await h.registerVerified();
    h.clock.advance(1);
    const wrong = await h.call("POST", "/api/v1/auth/login", { email: u.email, password: "not-the-password" });
    expect(wrong.status).toBe(401);
    const malformed = await h.call("POST", "/api/v1/auth/login", { email: u.email });
    expect(malformed.status).toBe(400);
    h.clock.advance(1);
    const tokens = await h.login(u.email, u.password);
    const entries = await allEntries(h, tokens.access_token);
    expect(types(entries)).toEqual(["login", "login_failed", "register"]);
    expect(entries[1]?.details).toEqual({ method: "password" });
  });

  it("records logout (with the session it ended) and logout_all", async () => {
    const u = await signedIn();
    const second = await h.login(u.email, u.password);
    h.clock.advance(1);
    expect((await h.call("POST", "/api/v1/auth/logout", { refresh_token: second.refresh_token })).status).toBe(204);
    h.clock.advance(1);
    const third = await h.login(u.email, u.password);
    h.clock.advance(1);
    expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: third.access_token })).status).toBe(204);
    h.clock.advance(1000);
    h.clock.advance(1); // entries are ordered by time, then by random id: keep the order certain
    const fresh = await h.login(u.email, u.password);
    const entries = await allEntries(h, fresh.access_token);
    expect(types(entries)).toEqual(["login", "logout_all", "login", "logout", "login", "login", "register"]);
    expect(entries[3]?.details).toEqual({ session_id: decodeJwt(second.access_token).payload.sid });
  });

  it("records token_reuse_detected when a rotated refresh token comes back, but no entry for ordinary refreshes", async () => {
    const u = await signedIn();
    const rotated = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token });
    expect(rotated.status).toBe(200);
    // Within a few seconds a repeat is taken for the client's own duplicate request, not theft.
    h.clock.advance(REFRESH_RACE_GRACE_MS);
    const reused = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token });
    expect(reused.status).toBe(401);
    // The whole sign-in is revoked, its access tokens included: read the history from a new one.
    expect((await h.call("GET", "/api/v1/me/activity", undefined, { token: rotated.json.access_token })).status).toBe(401);
    h.clock.advance(1); // entries are ordered by time, then by random id: keep the order certain
    const fresh = await h.login(u.email, u.password);
    const entries = await allEntries(h, fresh.access_token);
    expect(types(entries)).toEqual(["login", "token_reuse_detected", "login", "register"]);
    expect(entries[1]?.details).toEqual({ session_id: decodeJwt(u.access_token).payload.sid });
  });

  it("records password_changed; a wrong current password or a weak new one records nothing", async () => {
    const u = await h.signedInUser();
    const wrongCurrent = await h.call(
      "POST",
      "/api/v1/me/password",
      { current_password: "wrong-password-123", new_password: NEW_PASSWORD },
      { token: u.access_token },
    );
    expect(wrongCurrent.status).toBe(401);
    const weak = await h.call(
      "POST",
      "/api/v1/me/password",
      { current_password: u.password, new_password: "123" },
      { token: u.access_token },
    );
    expect(weak.status).toBe(400);
    expect(types(await allEntries(h, u.access_token))).not.toContain("password_changed");
    const ok = await h.call(
      "POST",
      "/api/v1/me/password",
      { current_password: u.password, new_password: NEW_PASSWORD },
      { token: u.access_token },
    );
    expect(ok.status).toBe(204);
    h.clock.advance(1000);
    const fresh = await h.login(u.email, NEW_PASSWORD);
    expect(types(await allEntries(h, fresh.access_token, "type=password_changed"))).toEqual(["password_changed"]);
  });

  it("records email_change_requested; a change without the current password records nothing", async () => {
    await setConfig("access_token_ttl", "3600");
    const u = await h.signedInUser();
    h.clock.advance(61_000);
    const newEmail = `${unique("moved")}@example.com`;
    const refused = await h.call("PATCH", "/api/v1/me", { email: newEmail }, { token: u.access_token });
    expect(refused.status).toBe(401);
    const invalid = await h.call("PATCH", "/api/v1/me", { email: "not-an-email", current_password: u.password }, { token: u.access_token });
    expect(invalid.status).toBe(400);
    expect(types(await allEntries(h, u.access_token))).not.toContain("email_change_requested");
    const ok = await h.call("PATCH", "/api/v1/me", { email: newEmail, current_password: u.password }, { token: u.access_token });
    expect(ok.status).toBe(200);
    expect(types(await allEntries(h, u.access_token, "type=email_change_requested"))).toEqual(["email_change_requested"]);
    await setConfig("access_token_ttl", undefined);
  });

  it("records username_changed with the names before and after; a refused or unchanged username records nothing", async () => {
    const u = await h.signedInUser();
    const other = await h.registerVerified();
    const before = u.username;
    expect((await h.call("PATCH", "/api/v1/me", { username: other.username }, { token: u.access_token })).status).toBe(409);
    expect((await h.call("PATCH", "/api/v1/me", { username: before }, { token: u.access_token })).status).toBe(200);
    expect(types(await allEntries(h, u.access_token, "type=username_changed"))).toEqual([]);
    const renamed = unique("renamed");
    expect((await h.call("PATCH", "/api/v1/me", { username: renamed }, { token: u.access_token })).status).toBe(200);
    h.clock.advance(1);
    expect((await h.call("PUT", "/api/v1/me", { email: u.email }, { token: u.access_token })).status).toBe(200);
    const entries = await allEntries(h, u.access_token, "type=username_changed");
    expect(entries.map((e) => e.details)).toEqual([
      { from: renamed, to: null },
      { from: before, to: renamed },
    ]);
  });

  it("records status_created and status_deleted; a refused status records nothing", async () => {
    const u = await signedIn();
    expect((await h.call("POST", "/api/v1/statuses", { content: " " }, { token: u.access_token })).status).toBe(400);
    const created = await h.call("POST", "/api/v1/statuses", { content: "hello" }, { token: u.access_token });
    const id = created.json.status.id;
    h.clock.advance(1);
    expect((await h.call("DELETE", `/api/v1/statuses/${id}`, undefined, { token: u.access_token })).status).toBe(204);
    const entries = await allEntries(h, u.access_token);
    expect(types(entries)).toEqual(["status_deleted", "status_created", "login", "register"]);
    expect(entries[0]?.details).toEqual({ status_id: id });
    expect(entries[1]?.details).toEqual({ status_id: id });
  });

  it("records session_revoked; revoking an unknown session records nothing", async () => {
    const u = await h.signedInUser();
    const other = await h.login(u.email, u.password);
    const sid = decodeJwt(other.access_token).payload.sid;
    expect((await h.call("DELETE", "/api/v1/me/sessions/unknown", undefined, { token: u.access_token })).status).toBe(404);
    expect((await h.call("DELETE", `/api/v1/me/sessions/${sid}`, undefined, { token: u.access_token })).status).toBe(204);
    const entries = await allEntries(h, u.access_token, "type=session_revoked");
    expect(entries).toHaveLength(1);
    expect(entries[0]?.details).toEqual({ session_id: sid });
  });

  it("records otp_requested, email_verified, an otp login and a failed otp login", async () => {
    const email = `${unique("otp")}@example.com`;
    const password = "Tr0ub4dor&3-horse";
    const from = cap.sent.length;
    expect((await h.call("POST", "/api/v1/auth/register", { email, password }, { env: cap.env })).status).toBe(201);
    const [activation] = await mailsFor(cap.sent, h.clock, from);
    h.clock.advance(1);
    const verified = await h.call("POST", "/api/v1/auth/verify-email", { email, code: codeInMail(activation!), password });
    expect(verified.status).toBe(200);
    // One code a minute per address: the registration's was the last.
    h.clock.advance(61_000);

    const fromLogin = cap.sent.length;
    expect((await h.call("POST", "/api/v1/auth/otp", { email, purpose: "login" }, { env: cap.env })).status).toBe(202);
    const [mail] = await mailsFor(cap.sent, h.clock, fromLogin);
    const code = codeInMail(mail!);
    const wrong = code === "000000" ? "111111" : "000000";
    h.clock.advance(1);
    expect((await h.call("POST", "/api/v1/auth/login/otp", { email, code: wrong })).status).toBe(400);
    h.clock.advance(1);
    const login = await h.call("POST", "/api/v1/auth/login/otp", { email, code });
    expect(login.status).toBe(200);

    const entries = await allEntries(h, login.json.access_token);
    expect(types(entries)).toEqual(["login", "login_failed", "otp_requested", "email_verified", "register"]);
    expect(entries[0]?.details).toEqual({ method: "otp", session_id: decodeJwt(login.json.access_token).payload.sid });
    expect(entries[1]?.details).toEqual({ method: "otp" });
    expect(entries[2]?.details).toEqual({ purpose: "login" });
    expect(JSON.stringify(entries)).not.toContain(code);
  });

  it("records profile_updated with the changed fields' names, never their values; an invalid edit records nothing", async () => {
    const u = await h.signedInUser();
    const invalid = await h.call("PATCH", "/api/v1/me/profile", { age: -5 }, { token: u.access_token });
    expect(invalid.status).toBe(400);
    const ok = await h.call(
      "PATCH",
      "/api/v1/me/profile",
      { name: "Augusta", phone_number: "+44 20 7946 0958" },
      { token: u.access_token },
    );
    expect(ok.status).toBe(200);
    const entries = await allEntries(h, u.access_token, "type=profile_updated");
    expect(entries).toHaveLength(1);
    expect(((entries[0]?.details.fields ?? []) as string[]).sort()).toEqual(["name", "phone_number"]);
    const json = JSON.stringify(entries);
    expect(json).not.toContain("Augusta");
    expect(json).not.toContain("7946");
  });

  it("records avatar_updated and avatar_deleted; a refused upload records nothing", async () => {
    const u = await signedIn();
    const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"/>');
    const refused = await h.call("PUT", "/api/v1/me/avatar", undefined, {
      token: u.access_token,
      raw: svg,
      headers: { "content-type": "image/svg+xml" },
    });
    expect(refused.status).toBe(415);
    const uploaded = await h.call("PUT", "/api/v1/me/avatar", undefined, {
      token: u.access_token,
      raw: GIF,
      headers: { "content-type": "image/gif" },
    });
    expect(uploaded.status).toBe(200);
    h.clock.advance(1);
    expect((await h.call("DELETE", "/api/v1/me/avatar", undefined, { token: u.access_token })).status).toBe(204);
    expect(types(await allEntries(h, u.access_token))).toEqual(["avatar_deleted", "avatar_updated", "login", "register"]);
  });

  it("filters by type and refuses an unknown type with 400", async () => {
    const u = await h.signedInUser();
    await h.login(u.email, u.password);
    expect(types(await allEntries(h, u.access_token, "type=login"))).toEqual(["login", "login"]);
    expect(await allEntries(h, u.access_token, "type=logout")).toEqual([]);
    const bad = await h.call("GET", "/api/v1/me/activity?type=everything", undefined, { token: u.access_token });
    expect(bad.status).toBe(400);
    expect(bad.json.errors[0].path).toBe("type");
  });

  it("pages newest first without repeats, including entries made in the same millisecond", async () => {
    const u = await h.signedInUser();
    for (let i = 0; i < 4; i++) await h.login(u.email, u.password);
    h.clock.advance(10);
    for (let i = 0; i < 3; i++) await h.call("POST", "/api/v1/statuses", { content: `s${i}` }, { token: u.access_token });
    const everything = await allEntries(h, u.access_token);
    expect(everything).toHaveLength(1 + 5 + 3);
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const path: string = `/api/v1/me/activity?limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const res = await h.call("GET", path, undefined, { token: u.access_token });
      ids.push(...res.json.items.map((e: Entry) => e.id));
      cursor = res.json.next_cursor;
      pages++;
    } while (cursor && pages < 20);
    expect(pages).toBe(5);
    expect(ids).toEqual(everything.map((e) => e.id));
    const times = everything.map((e) => e.created_at);
    expect(times).toEqual([...times].sort().reverse());
    expect((await h.call("GET", "/api/v1/me/activity?cursor=%%%", undefined, { token: u.access_token })).json.code).toBe("invalid_cursor");
  });

  it("shows only the caller's own entries, whatever the query says", async () => {
    const a = await h.signedInUser();
    const b = await h.signedInUser();
    const mine = await allEntries(h, b.access_token, `user_id=${a.id}`);
    const aIds = new Set((await allEntries(h, a.access_token)).map((e) => e.id));
    expect(mine.length).toBe(2);
    expect(mine.some((e) => aIds.has(e.id))).toBe(false);
  });

  it("needs a token", async () => {
    expect((await h.call("GET", "/api/v1/me/activity")).status).toBe(401);
  });

  it("never contains a password, refresh token, access token or code, after every kind of action", async () => {
    await setConfig("require_email_verification", "false");
    await setConfig("access_token_ttl", "3600");
    const u = await h.signedInUser();
    const secrets = [u.password, NEW_PASSWORD, u.refresh_token, u.access_token];
    const rotated = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token });
    secrets.push(rotated.json.refresh_token, rotated.json.access_token);
    h.clock.advance(REFRESH_RACE_GRACE_MS);
    await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token }); // reuse
    await h.call("POST", "/api/v1/auth/login", { email: u.email, password: "Wrong-Password-99" });
    secrets.push("Wrong-Password-99");
    const second = await h.login(u.email, u.password);
    secrets.push(second.refresh_token, second.access_token);
    await h.call(
      "POST",
      "/api/v1/me/password",
      { current_password: u.password, new_password: NEW_PASSWORD },
      { token: second.access_token },
    );
    h.clock.advance(1000);
    const third = await h.login(u.email, NEW_PASSWORD);
    secrets.push(third.refresh_token, third.access_token);
    // Before the email change, which ends every other sign-in.
    await h.call("POST", "/api/v1/auth/logout", { refresh_token: second.refresh_token });
    const newEmail = `${unique("x")}@example.com`;
    const changeFrom = cap.sent.length;
    await h.call("PATCH", "/api/v1/me", { email: newEmail, current_password: NEW_PASSWORD }, { token: third.access_token, env: cap.env });
    const changeCode = cap.sent[changeFrom]?.code as string;
    secrets.push(changeCode);
    expect((await h.call("POST", "/api/v1/me/email/verify", { code: changeCode }, { token: third.access_token })).status).toBe(200);
    h.clock.advance(61_000);
    const from = cap.sent.length;
    await h.call("POST", "/api/v1/auth/otp", { email: newEmail, purpose: "login" }, { env: cap.env });
    expect(cap.sent.length).toBe(from + 1);
    secrets.push(...cap.sent.slice(from).map((m) => m.code));

    const entries = await allEntries(h, third.access_token);
    expect(new Set(types(entries))).toEqual(
      new Set([
        "register",
        "login",
        "token_reuse_detected",
        "login_failed",
        "password_changed",
        "email_change_requested",
        "email_changed",
        "otp_requested",
        "logout",
      ]),
    );
    await setConfig("access_token_ttl", undefined);
    const raw = JSON.stringify(entries);
    for (const secret of secrets) expect(raw).not.toContain(secret);
    // The stored rows, not just the API view.
    const { results } = await env.DB.prepare("SELECT * FROM activity WHERE user_id = ?").bind(u.id).all();
    const stored = JSON.stringify(results);
    for (const secret of secrets) expect(stored).not.toContain(secret);
    expect(stored).not.toMatch(/password_hash|token_hash|code_hash/);
  });

  it("deletes the account's statuses, activity, sessions and profile with the account", async () => {
    const u = await h.signedInUser();
    await h.call("POST", "/api/v1/statuses", { content: "soon gone" }, { token: u.access_token });
    await h.call("PATCH", "/api/v1/me/profile", { name: "Temp" }, { token: u.access_token });
    for (const table of ["statuses", "activity", "refresh_tokens", "profiles"]) expect(await countRows(table, u.id)).toBeGreaterThan(0);
    const wrong = await h.call("DELETE", "/api/v1/me", { current_password: "not-my-password" }, { token: u.access_token });
    expect(wrong.status).toBe(401);
    expect(await countRows("activity", u.id)).toBeGreaterThan(0);
    const res = await h.call("DELETE", "/api/v1/me", { current_password: u.password }, { token: u.access_token });
    expect(res.status).toBe(204);
    for (const table of ["statuses", "activity", "refresh_tokens", "profiles", "otp_codes"]) expect(await countRows(table, u.id)).toBe(0);
  });
});

describe("retention job", () => {
  // Long ago, so nothing other test files made is old enough to be touched by these runs.
  const T0 = Date.UTC(2000, 0, 1);
  const h = harness({ start: T0 });
  const retentionDeps = () => createBackgroundDeps(env, h.clock);
  const activityTimes = async (userId: string) => {
    const { results } = await env.DB.prepare("SELECT created_at FROM activity WHERE user_id = ? ORDER BY created_at")
      .bind(userId)
      .all<{ created_at: number }>();
    return results.map((r) => r.created_at);
  };

  afterEach(async () => {
    await setConfig("activity_retention_days", undefined);
  });

  it("deletes entries older than activity_retention_days and keeps the rest", async () => {
    await setConfig("activity_retention_days", "30");
    h.clock.set(T0);
    const u = await h.signedInUser();
    h.clock.advance(20 * DAY);
    await h.login(u.email, u.password);
    h.clock.advance(11 * DAY); // now T0 + 31 days: the first two entries are past 30 days
    const result = await runRetention(retentionDeps());
    expect(result.activity).toBeGreaterThanOrEqual(2);
    expect(await activityTimes(u.id)).toEqual([T0 + 20 * DAY]);
    // The user sees the same through the API.
    h.clock.advance(1); // entries are ordered by time, then by random id: keep the order certain
    const fresh = await h.login(u.email, u.password);
    const res = await h.call("GET", "/api/v1/me/activity", undefined, { token: fresh.access_token });
    expect(res.json.items.map((e: Entry) => e.type)).toEqual(["login", "login"]);
  });

  it("deletes the holds of usernames given up more than 30 days ago, and keeps the newer", async () => {
    h.clock.set(T0 + 400 * DAY);
    const old = await h.registerVerified();
    const recent = await h.registerVerified();
    // Kept a week (so their release holds them), then given up 25 days apart.
    h.clock.advance(8 * DAY);
    await h.call("PATCH", "/api/v1/me", { username: null }, { token: (await h.login(old.email, old.password)).access_token });
    h.clock.advance(25 * DAY);
    await h.call("PATCH", "/api/v1/me", { username: null }, { token: (await h.login(recent.email, recent.password)).access_token });
    h.clock.advance(6 * DAY);
    const result = await runRetention(retentionDeps());
    expect(result.releasedUsernames).toBeGreaterThanOrEqual(1);
    const { results } = await env.DB.prepare("SELECT username FROM released_usernames WHERE username IN (?, ?)")
      .bind(old.username, recent.username)
      .all<{ username: string }>();
    expect(results.map((row) => row.username)).toEqual([recent.username]);
  });

  it("goes on to every other kind when one fails, then reports the run failed", async () => {
    await setConfig("activity_retention_days", "30");
    const probe = probeD1(env.DB);
    probe.failWhen(/^delete from "activity"/i);
    const lines: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: unknown) => void lines.push(String(line)));
    const deps = createBackgroundDeps({ ...env, DB: probe.db } as Env, h.clock);
    const result = await runRetention(deps);
    expect(result).toMatchObject({ failed: ["activity"], complete: false });
    for (const table of ["refresh_tokens", "rate_limits", "otp_codes"]) {
      expect(
        probe.statements.some((s) => new RegExp(`^delete from "${table}"`, "i").test(s)),
        table,
      ).toBe(true);
    }
    expect(lines.map((l) => JSON.parse(l)).find((l) => l.event === "retention")).toMatchObject({ level: "error", failed: "activity" });
    // The cron invocation fails, so the platform shows it, but only after every kind had its turn.
    await expect(scheduledRetention(deps)).rejects.toThrow(/activity/);
    vi.restoreAllMocks();
  });

  it("deletes no activity while it cannot read the period the operator set: an invalid value, or KV failing", async () => {
    await setConfig("activity_retention_days", "3650");
    h.clock.set(T0 + 100 * DAY);
    const u = await h.registerVerified();
    h.clock.advance(400 * DAY); // past the 365-day default, well within the operator's 3,650 days
    const failingKv = new Proxy(env.CONFIG, {
      get(target, property) {
        if (property === "get") return async () => Promise.reject(new Error("KV GET failed: 503"));
        const value = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as KVNamespace;
    const unreadable = await runRetention(createBackgroundDeps({ ...env, CONFIG: failingKv }, h.clock));
    expect(unreadable).toMatchObject({ activity: 0, complete: false });
    expect(await activityTimes(u.id)).toEqual([T0 + 100 * DAY]);
    // A value written by hand that the worker cannot use (requests then use the default).
    await setConfig("activity_retention_days", "3650d");
    expect(await runRetention(retentionDeps())).toMatchObject({ activity: 0, complete: false });
    expect(await activityTimes(u.id)).toEqual([T0 + 100 * DAY]);
    // Once KV says it again, the operator's period applies.
    await setConfig("activity_retention_days", "3650");
    await runRetention(retentionDeps());
    expect(await activityTimes(u.id)).toEqual([T0 + 100 * DAY]);
  });

  it("deletes in bounded batches and finishes the backlog on the next run", async () => {
    h.clock.set(T0);
    const u = await h.registerVerified();
    // Seven entries from 1970: older than anything else in the database.
    for (let i = 0; i < 7; i++) {
      await env.DB.prepare("INSERT INTO activity (id, user_id, type, created_at, details) VALUES (?, ?, 'login', ?, '{}')")
        .bind(randomId(), u.id, 1000 + i)
        .run();
    }
    h.clock.set(400 * DAY); // 1971: only those seven are past 365 days
    const first = await runRetention(retentionDeps(), { batchSize: 3, maxRounds: 2 });
    expect(first).toMatchObject({ activity: 6, complete: false });
    const second = await runRetention(retentionDeps(), { batchSize: 3, maxRounds: 2 });
    expect(second).toMatchObject({ activity: 1, complete: true });
    expect(await activityTimes(u.id)).toEqual([T0]);
  });

  it("deletes refresh tokens only of sign-ins that have entirely expired, keeping rotated ones that still detect reuse", async () => {
    // Long-lived sign-ins: the absolute lifetime (30 days by default) would end session A first.
    await setConfig("session_max_age", String(365 * 24 * 3600));
    h.clock.set(T0 + 500 * DAY);
    const start = h.clock.now();
    const u = await h.signedInUser(); // session A
    const b = await h.login(u.email, u.password); // session B, never refreshed
    h.clock.advance(29 * DAY);
    const rotated = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token });
    expect(rotated.status).toBe(200);
    h.clock.advance(2 * DAY); // A's first token and all of B have expired; A's second token is live
    const tokensOf = async (sessionToken: string) => {
      const sid = decodeJwt(sessionToken).payload.sid;
      const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM refresh_tokens WHERE family_id = ?").bind(sid).first<{ n: number }>();
      return row?.n ?? 0;
    };
    expect(await tokensOf(u.access_token)).toBe(2);
    expect(await tokensOf(b.access_token)).toBe(1);
    const result = await runRetention(retentionDeps());
    expect(result.refreshTokens).toBeGreaterThanOrEqual(1);
    expect(await tokensOf(b.access_token)).toBe(0);
    expect(await tokensOf(u.access_token)).toBe(2);
    // The expired, rotated token is still known: presenting it is reuse and ends session A.
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token })).status).toBe(401);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: rotated.json.refresh_token })).status).toBe(401);
    h.clock.set(start + 61 * DAY);
    await runRetention(retentionDeps());
    expect(await tokensOf(u.access_token)).toBe(0);
    await setConfig("session_max_age", undefined);
  });

  it("deletes ended rate-limit windows and expired one-time codes, keeping live ones", async () => {
    h.clock.set(T0 + 700 * DAY);
    const now = h.clock.now();
    const u = await h.registerVerified();
    const ended = `test:${unique("rl")}`;
    const live = `test:${unique("rl")}`;
    await env.DB.batch([
      env.DB.prepare("INSERT INTO rate_limits (key, count, reset_at) VALUES (?, 3, ?)").bind(ended, now - 1),
      env.DB.prepare("INSERT INTO rate_limits (key, count, reset_at) VALUES (?, 3, ?)").bind(live, now + 60_000),
      env.DB.prepare(
        "INSERT INTO otp_codes (id, user_id, purpose, code_hash, created_at, expires_at, consumed_at) VALUES ('old-' || ?, ?, 'login', 'h1', ?, ?, ?)",
      ).bind(u.id, u.id, now - 700_000, now - 100_000, now - 600_000),
      env.DB.prepare(
        "INSERT INTO otp_codes (id, user_id, purpose, code_hash, created_at, expires_at) VALUES ('new-' || ?, ?, 'login', 'h2', ?, ?)",
      ).bind(u.id, u.id, now, now + 600_000),
    ]);
    const result = await runRetention(retentionDeps());
    expect(result.rateLimits).toBeGreaterThanOrEqual(1);
    expect(result.otpCodes).toBeGreaterThanOrEqual(1);
    const keys = await env.DB.prepare("SELECT key FROM rate_limits WHERE key IN (?, ?)").bind(ended, live).all<{ key: string }>();
    expect(keys.results.map((r) => r.key)).toEqual([live]);
    const codes = await env.DB.prepare("SELECT id FROM otp_codes WHERE user_id = ? AND (id LIKE 'old-%' OR id LIKE 'new-%')")
      .bind(u.id)
      .all<{ id: string }>();
    expect(codes.results.map((r) => r.id)).toEqual([`new-${u.id}`]);
  });

  it("runs from the worker's scheduled handler (the cron trigger)", async () => {
    h.clock.set(T0);
    const u = await h.registerVerified();
    const key = `test:${unique("cron")}`;
    await env.DB.batch([
      env.DB.prepare("INSERT INTO activity (id, user_id, type, created_at, details) VALUES (?, ?, 'login', 5, '{}')").bind(
        randomId(),
        u.id,
      ),
      env.DB.prepare("INSERT INTO rate_limits (key, count, reset_at) VALUES (?, 1, 5)").bind(key),
    ]);
    const recent = randomId();
    await env.DB.prepare("INSERT INTO activity (id, user_id, type, created_at, details) VALUES (?, ?, 'login', ?, '{}')")
      .bind(recent, u.id, Date.now() - DAY)
      .run();
    const controller = createScheduledController({ scheduledTime: new Date(), cron: "17 3 * * *" });
    const ctx = createExecutionContext();
    await worker.scheduled(controller, env, ctx);
    await waitOnExecutionContext(ctx);
    const left = await env.DB.prepare("SELECT id FROM activity WHERE user_id = ?").bind(u.id).all<{ id: string }>();
    expect(left.results.map((r) => r.id)).toEqual([recent]);
    expect(await env.DB.prepare("SELECT key FROM rate_limits WHERE key = ?").bind(key).first()).toBeNull();
  });
});
