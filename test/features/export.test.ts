import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { decodeJwt, harness } from "../helpers";

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

  it("needs a token", async () => {
    expect((await h.call("GET", "/api/v1/me/export")).status).toBe(401);
  });
});
