import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { REFRESH_RACE_GRACE_MS } from "../../src/features/auth/tokens.service";
import { decodeJwt, harness } from "../helpers";

const h = harness();
const DAY = 86_400_000;
const REFRESH_TTL_MS = 30 * DAY; // KV refresh_token_ttl default

const sidOf = (accessToken: string) => decodeJwt(accessToken).payload.sid as string;
const iso = (ms: number) => new Date(ms).toISOString();

async function sessions(token: string) {
  const res = await h.call("GET", "/api/v1/me/sessions", undefined, { token });
  expect(res.status).toBe(200);
  return res.json.items as {
    id: string;
    created_at: string;
    last_used_at: string;
    expires_at: string;
    ip: string | null;
    user_agent: string | null;
    current: boolean;
  }[];
}

const refresh = (refreshToken: string, headers: Record<string, string> = {}) =>
  h.call("POST", "/api/v1/auth/refresh", { refresh_token: refreshToken }, { headers });

async function activityTypes(userId: string) {
  const { results } = await env.DB.prepare("SELECT type FROM activity WHERE user_id = ? ORDER BY created_at, id")
    .bind(userId)
    .all<{ type: string }>();
  return results.map((r) => r.type);
}

describe("GET /me/sessions", () => {
  it("lists one session per sign-in with when and where, most recently used first, marking the current one", async () => {
    const u = await h.registerVerified();
    const t1 = h.clock.now();
    const phone = await h.login(u.email, u.password, { headers: { "cf-connecting-ip": "198.51.100.1", "user-agent": "Phone/1" } });
    h.clock.advance(60_000);
    const t2 = h.clock.now();
    const laptop = await h.login(u.email, u.password, { headers: { "cf-connecting-ip": "198.51.100.2", "user-agent": "Laptop/1" } });

    const list = await sessions(laptop.access_token);
    expect(list).toEqual([
      {
        id: sidOf(laptop.access_token),
        created_at: iso(t2),
        last_used_at: iso(t2),
        expires_at: iso(t2 + REFRESH_TTL_MS),
        ip: "198.51.100.2",
        user_agent: "Laptop/1",
        current: true,
      },
      {
        id: sidOf(phone.access_token),
        created_at: iso(t1),
        last_used_at: iso(t1),
        expires_at: iso(t1 + REFRESH_TTL_MS),
        ip: "198.51.100.1",
        user_agent: "Phone/1",
        current: false,
      },
    ]);
    // From the other device (its access token has expired meanwhile: refresh it) that one is current.
    h.clock.advance(1000);
    const phoneAgain = await refresh(phone.refresh_token);
    expect((await sessions(phoneAgain.json.access_token)).map((s) => [s.id, s.current])).toEqual([
      [sidOf(phone.access_token), true],
      [sidOf(laptop.access_token), false],
    ]);
  });

  it("moves last_used_at, expiry, IP and user agent to the newest token on refresh, keeping the start time", async () => {
    const u = await h.registerVerified();
    const t1 = h.clock.now();
    const first = await h.login(u.email, u.password, { headers: { "cf-connecting-ip": "198.51.100.3", "user-agent": "App/1" } });
    h.clock.advance(3 * DAY);
    const t2 = h.clock.now();
    const rotated = await refresh(first.refresh_token, { "cf-connecting-ip": "198.51.100.4", "user-agent": "App/2" });
    expect(rotated.status).toBe(200);
    h.clock.advance(1000);
    const rotatedAgain = await refresh(rotated.json.refresh_token, { "cf-connecting-ip": "198.51.100.5", "user-agent": "App/3" });
    const t3 = h.clock.now();
    const list = await sessions(rotatedAgain.json.access_token);
    expect(list).toEqual([
      {
        id: sidOf(first.access_token),
        created_at: iso(t1),
        last_used_at: iso(t3),
        // The idle lifetime renews at each refresh, but never past the sign-in's absolute end
        // (session_max_age, 30 days from the login, like refresh_token_ttl by default).
        expires_at: iso(Math.min(t3 + REFRESH_TTL_MS, t1 + 30 * DAY)),
        ip: "198.51.100.5",
        user_agent: "App/3",
        current: true,
      },
    ]);
    expect(t2).toBeLessThan(t3);
  });

  it("leaves out sessions that ended: logged out, revoked for reuse, or expired", async () => {
    const u = await h.registerVerified();
    const loggedOut = await h.login(u.email, u.password);
    await h.call("POST", "/api/v1/auth/logout", { refresh_token: loggedOut.refresh_token });
    const reused = await h.login(u.email, u.password);
    expect((await refresh(reused.refresh_token)).status).toBe(200);
    h.clock.advance(REFRESH_RACE_GRACE_MS);
    expect((await refresh(reused.refresh_token)).status).toBe(401); // reuse ends the family
    const expiring = await h.login(u.email, u.password);
    expect((await sessions(expiring.access_token)).map((s) => s.id)).toEqual([sidOf(expiring.access_token)]);
    h.clock.advance(REFRESH_TTL_MS + 1);
    const live = await h.login(u.email, u.password);
    expect((await sessions(live.access_token)).map((s) => s.id)).toEqual([sidOf(live.access_token)]);
  });

  it("needs a token", async () => {
    expect((await h.call("GET", "/api/v1/me/sessions")).status).toBe(401);
  });
});

describe("DELETE /me/sessions/{id}", () => {
  it("revokes that session: its refresh token stops at once, the others keep working, session_revoked is recorded", async () => {
    const u = await h.registerVerified();
    const phone = await h.login(u.email, u.password);
    const laptop = await h.login(u.email, u.password);
    const res = await h.call("DELETE", `/api/v1/me/sessions/${sidOf(phone.access_token)}`, undefined, { token: laptop.access_token });
    expect(res.status).toBe(204);
    expect((await refresh(phone.refresh_token)).status).toBe(401);
    // The revoked session's access token stops at once too; the other session's does not.
    expect((await h.call("GET", "/api/v1/me", undefined, { token: phone.access_token })).status).toBe(401);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: laptop.access_token })).status).toBe(200);
    const stillFine = await refresh(laptop.refresh_token);
    expect(stillFine.status).toBe(200);
    expect((await sessions(stillFine.json.access_token)).map((s) => s.id)).toEqual([sidOf(laptop.access_token)]);
    const types = await activityTypes(u.id);
    expect(types.filter((t) => t === "session_revoked")).toHaveLength(1);
    // A revoked (not rotated) token coming back is not reuse.
    expect(types).not.toContain("token_reuse_detected");
    const row = await env.DB.prepare("SELECT revoked_reason FROM refresh_tokens WHERE family_id = ?")
      .bind(sidOf(phone.access_token))
      .first<{ revoked_reason: string }>();
    expect(row?.revoked_reason).toBe("session_revoked");
  });

  it("revokes the whole family, including tokens issued by later refreshes", async () => {
    const u = await h.registerVerified();
    const a = await h.login(u.email, u.password);
    const b = await h.login(u.email, u.password);
    const rotated = await refresh(a.refresh_token);
    expect((await h.call("DELETE", `/api/v1/me/sessions/${sidOf(a.access_token)}`, undefined, { token: b.access_token })).status).toBe(204);
    expect((await refresh(rotated.json.refresh_token)).status).toBe(401);
  });

  it("can end the current session (signing this device out)", async () => {
    const u = await h.signedInUser();
    const res = await h.call("DELETE", `/api/v1/me/sessions/${sidOf(u.access_token)}`, undefined, { token: u.access_token });
    expect(res.status).toBe(204);
    expect((await refresh(u.refresh_token)).status).toBe(401);
    // This device's access token ended with its session; another sign-in sees no trace of it.
    expect((await h.call("GET", "/api/v1/me/sessions", undefined, { token: u.access_token })).status).toBe(401);
    const other = await h.login(u.email, u.password);
    expect((await sessions(other.access_token)).map((s) => s.id)).toEqual([sidOf(other.access_token)]);
  });

  it("answers 404 for another user's session and leaves it alive", async () => {
    const victim = await h.signedInUser();
    const attacker = await h.signedInUser();
    const res = await h.call("DELETE", `/api/v1/me/sessions/${sidOf(victim.access_token)}`, undefined, { token: attacker.access_token });
    expect(res.status).toBe(404);
    expect(res.json.code).toBe("not_found");
    expect((await refresh(victim.refresh_token)).status).toBe(200);
    expect(await activityTypes(victim.id)).not.toContain("session_revoked");
    expect(await activityTypes(attacker.id)).not.toContain("session_revoked");
  });

  it("answers 404 for an unknown or already ended session, and 401 without a token", async () => {
    const u = await h.signedInUser();
    const other = await h.login(u.email, u.password);
    await h.call("POST", "/api/v1/auth/logout", { refresh_token: other.refresh_token });
    const ended = await h.call("DELETE", `/api/v1/me/sessions/${sidOf(other.access_token)}`, undefined, { token: u.access_token });
    expect(ended.status).toBe(404);
    expect((await h.call("DELETE", "/api/v1/me/sessions/not-a-session", undefined, { token: u.access_token })).status).toBe(404);
    expect((await h.call("DELETE", `/api/v1/me/sessions/${sidOf(u.access_token)}`)).status).toBe(401);
    expect((await refresh(u.refresh_token)).status).toBe(200);
    expect(await activityTypes(u.id)).not.toContain("session_revoked");
  });
});
