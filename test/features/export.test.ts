import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { EXPORT_PAGE_SIZE } from "../../src/features/export/export.service";
import { setLogSink } from "../../src/lib/log";
import { type D1Probe, probeD1 } from "../d1-wrap";
import { BASE, decodeJwt, harness, unique } from "../helpers";

const h = harness();

/** A user with something of every kind: profile, statuses, activity, a live and an ended session. */
async function busyUser() {
  const u = await h.signedInUser();
  const ended = await h.login(u.email, u.password, { headers: { "user-agent": "OldPhone/1" } });
  h.clock.advance(1);
  await h.call("POST", "/api/v1/auth/logout", { refresh_token: ended.refresh_token });
  const profile = await h.call("PATCH", "/api/v1/me/profile", { name: "Ada", profession: "Analyst" }, { token: u.access_token });
  expect(profile.status).toBe(200);
  const statuses: string[] = [];
  for (const content of ["first post", "second post"]) {
    h.clock.advance(1);
    statuses.push((await h.call("POST", "/api/v1/statuses", { content }, { token: u.access_token })).json.status.id);
  }
  await h.call("POST", "/api/v1/auth/login", { email: u.email, password: "Wrong-Password-42" });
  return { ...u, ended, statuses };
}

async function download(token: string) {
  return h.call("GET", "/api/v1/me/export", undefined, { token });
}

describe("GET /me/export", () => {
  it("downloads account, profile, statuses, activity and sessions as an uncached JSON attachment", async () => {
    const u = await busyUser();
    const someoneElse = await h.signedInUser();
    await h.call("POST", "/api/v1/statuses", { content: "not yours" }, { token: someoneElse.access_token });

    const res = await download(u.access_token);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="latchkey-export.json"');
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);

    const data = res.json;
    expect(Object.keys(data).sort()).toEqual(["account", "activity", "exported_at", "format_version", "profile", "sessions", "statuses"]);
    expect(data.exported_at).toBe(new Date(h.clock.now()).toISOString());
    expect(data.account).toEqual({
      id: u.id,
      email: u.email,
      username: u.username,
      is_active: true,
      is_staff: false,
      email_verified: true,
      created_at: expect.any(String),
      pending_email: null,
    });
    expect(data.profile).toMatchObject({ name: "Ada", profession: "Analyst", avatar_url: null, avatar_content_type: null });
    expect(data.statuses.map((s: { id: string }) => s.id)).toEqual([...u.statuses].reverse());
    expect(data.statuses[0]).toMatchObject({ user_id: u.id, username: u.username, content: "second post" });

    const activityTypes = data.activity.map((e: { type: string }) => e.type);
    for (const type of ["register", "login", "logout", "profile_updated", "status_created", "login_failed"]) {
      expect(activityTypes).toContain(type);
    }
    expect(data.activity.every((e: { details: unknown }) => typeof e.details === "object")).toBe(true);

    const bySession = new Map(data.sessions.map((s: { id: string }) => [s.id, s]));
    expect(bySession.size).toBe(2);
    expect(bySession.get(decodeJwt(u.access_token).payload.sid)).toMatchObject({ active: true, revoked_at: null, revoked_reason: null });
    expect(bySession.get(decodeJwt(u.ended.access_token).payload.sid)).toMatchObject({
      active: false,
      revoked_reason: "logout",
      user_agent: "OldPhone/1",
    });
  });

  it("never contains a password, a token, a code or any stored hash", async () => {
    const u = await busyUser();
    const rotated = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token });
    const res = await download(rotated.json.access_token);
    expect(res.status).toBe(200);
    const text = res.text;

    const secrets = [u.password, "Wrong-Password-42", u.refresh_token, u.access_token, u.ended.refresh_token, rotated.json.refresh_token];
    const user = await env.DB.prepare("SELECT password_hash FROM users WHERE id = ?").bind(u.id).first<{ password_hash: string }>();
    secrets.push(user?.password_hash as string);
    const tokens = await env.DB.prepare("SELECT token_hash FROM refresh_tokens WHERE user_id = ?").bind(u.id).all<{ token_hash: string }>();
    secrets.push(...tokens.results.map((r) => r.token_hash));
    // Registration mailed an activation code: its hash is stored, and must not be exported.
    const codes = await env.DB.prepare("SELECT code_hash FROM otp_codes WHERE user_id = ?").bind(u.id).all<{ code_hash: string }>();
    expect(codes.results.length).toBeGreaterThan(0);
    secrets.push(...codes.results.map((r) => r.code_hash));
    expect(tokens.results.length).toBeGreaterThanOrEqual(3);

    for (const secret of secrets) expect(text).not.toContain(secret);
    // No field that could hold one, either ("password" may appear only as a login method's name).
    expect(text).not.toMatch(/"[a-z_]*(hash|password|secret|code)[a-z_]*":/i);
    expect(text).not.toMatch(/"(refresh|access)_token/);
  });

  it("exports an account with nothing yet but its registration and first sign-in", async () => {
    const u = await h.signedInUser();
    const data = (await download(u.access_token)).json;
    expect(data.statuses).toEqual([]);
    expect(data.profile).toMatchObject({ name: null, surname: null });
    expect(data.activity.map((e: { type: string }) => e.type).sort()).toEqual(["login", "register"]);
    expect(data.sessions).toHaveLength(1);
  });

  it("includes an address the account is moving to, still pending", async () => {
    const u = await h.signedInUser();
    const pending = `${unique("moving")}@example.com`;
    expect((await h.call("PATCH", "/api/v1/me", { email: pending, current_password: u.password }, { token: u.access_token })).status).toBe(
      200,
    );
    expect((await download(u.access_token)).json.account).toMatchObject({ email: u.email, pending_email: pending });
  });

  it("needs a token", async () => {
    expect((await h.call("GET", "/api/v1/me/export")).status).toBe(401);
  });
});

describe("GET /me/export of a long activity history", () => {
  /** Adds `rows` entries to the user's history, three to a millisecond so ties straddle page boundaries (ids are random). */
  async function longHistory(userId: string, rows: number) {
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
       INSERT INTO activity (id, user_id, type, created_at, ip, user_agent, details)
       SELECT 'a' || lower(hex(randomblob(8))), ?2, 'login', ?3 - i / 3, NULL, NULL, '{"n":' || i || '}' FROM n`,
    )
      .bind(rows, userId, h.clock.now() - 60_000)
      .run();
    const { results } = await env.DB.prepare("SELECT id FROM activity WHERE user_id = ? ORDER BY created_at DESC, id DESC")
      .bind(userId)
      .all<{ id: string }>();
    return results.map((r) => r.id);
  }

  /** The export's response as the worker hands it over, its body not yet read. */
  async function open(token: string, target: Env) {
    const headers = { authorization: `Bearer ${token}`, "cf-connecting-ip": "203.0.113.77" };
    return h.app.fetch(new Request(`${BASE}/api/v1/me/export`, { headers }), target);
  }

  const activityReads = (probe: D1Probe) => probe.statements.filter((s) => /^select .* from "activity"/i.test(s));
  const ROWS = Math.floor(EXPORT_PAGE_SIZE * 2.5);
  /** Reads of `entries`: full pages, then one that comes back short (`limit + 1` rows prove there is more). */
  const readsFor = (entries: number) => Math.ceil((entries + 1) / EXPORT_PAGE_SIZE);

  it("exports every entry of a history longer than a page exactly once, newest first, one bounded page per read", async () => {
    const u = await h.signedInUser();
    const expected = await longHistory(u.id, ROWS);
    const probe = probeD1(env.DB);
    const res = await open(u.access_token, { ...env, DB: probe.db });
    expect(res.status).toBe(200);
    const text = await res.text();

    const data = JSON.parse(text);
    expect(data.activity.map((e: { id: string }) => e.id)).toEqual(expected);
    expect(expected.length).toBe(ROWS + 2); // the factory's registration and sign-in
    // The same document JSON.stringify makes of it: compact, fields in their order.
    expect(text).toBe(JSON.stringify(data));
    expect(Object.keys(data)).toEqual(["format_version", "exported_at", "account", "profile", "statuses", "activity", "sessions"]);

    const reads = activityReads(probe);
    expect(reads).toHaveLength(readsFor(expected.length));
    for (const sql of reads) expect(sql).toMatch(/ limit \?$/i);
  });

  it("exports every status of an author with more than a page of them exactly once, newest first, one bounded page per read", async () => {
    const u = await h.signedInUser();
    // Three to a millisecond, so ties straddle page boundaries (ids are random).
    await env.DB.prepare(
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
       INSERT INTO statuses (id, user_id, content, created_at, updated_at)
       SELECT 's' || lower(hex(randomblob(8))), ?2, 'status ' || i, ?3 - i / 3, ?3 - i / 3 FROM n`,
    )
      .bind(ROWS, u.id, h.clock.now() - 60_000)
      .run();
    const { results } = await env.DB.prepare("SELECT id FROM statuses WHERE user_id = ? ORDER BY created_at DESC, id DESC")
      .bind(u.id)
      .all<{ id: string }>();
    const probe = probeD1(env.DB);
    const res = await open(u.access_token, { ...env, DB: probe.db });
    expect(res.status).toBe(200);
    const text = await res.text();
    const data = JSON.parse(text);
    expect(data.statuses.map((s: { id: string }) => s.id)).toEqual(results.map((r) => r.id));
    expect(data.statuses[0]).toMatchObject({ user_id: u.id, username: u.username, content: expect.stringMatching(/^status \d+$/) });
    expect(text).toBe(JSON.stringify(data));
    const reads = probe.statements.filter((s) => /^select .* from "statuses"/i.test(s));
    expect(reads).toHaveLength(readsFor(ROWS));
    for (const sql of reads) expect(sql).toMatch(/ limit \?$/i);
  });

  it("answers before reading the history, and reads each page only as the body is read", async () => {
    const u = await h.signedInUser();
    const entries = (await longHistory(u.id, ROWS)).length;
    const probe = probeD1(env.DB);
    const res = await open(u.access_token, { ...env, DB: probe.db });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="latchkey-export.json"');
    expect(activityReads(probe)).toHaveLength(0);

    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let chunks = 0;
    while (!(await reader.read()).done) {
      chunks++;
      // Never more than one page ahead of what the client took.
      expect(activityReads(probe).length).toBeLessThanOrEqual(chunks);
    }
    expect(activityReads(probe)).toHaveLength(readsFor(entries));
  });

  it("aborts the body, rather than ending it as a shorter valid document, when a page read fails after the 200", async () => {
    const lines: Record<string, unknown>[] = [];
    const restore = setLogSink((_level, line) => lines.push(JSON.parse(line)));
    try {
      const u = await h.signedInUser();
      await longHistory(u.id, ROWS);
      const probe = probeD1(env.DB);
      // The first page reads from the newest entry; every later one starts after a cursor.
      probe.failWhen(/from "activity" where .*"activity"\."created_at" < \?/i);
      const res = await open(u.access_token, { ...env, DB: probe.db });
      expect(res.status).toBe(200);

      await expect(res.text()).rejects.toThrow();
      expect(activityReads(probe)).toHaveLength(2);
      const errors = lines.filter((l) => l.event === "error");
      expect(errors).toEqual([expect.objectContaining({ level: "error", route: "/api/v1/me/export", request_id: expect.any(String) })]);
      expect(String(errors[0]?.error)).not.toContain(u.id);
    } finally {
      restore();
    }
  });
});
