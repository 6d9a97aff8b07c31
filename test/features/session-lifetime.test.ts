/**
 * A sign-in has an absolute lifetime (KV session_max_age, OWASP ASVS 10.4.8): rotating its
 * refresh token renews the idle lifetime (refresh_token_ttl) but never moves the end.
 */
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { decodeJwt, harness, setConfig } from "../helpers";

const REFRESH = "/api/v1/auth/refresh";
const HOUR = 3_600_000;

describe("absolute session lifetime", () => {
  const h = harness();

  afterEach(async () => {
    await setConfig("session_max_age", undefined);
    await setConfig("refresh_token_ttl", undefined);
  });

  const sessionsOf = async (token: string) => (await h.call("GET", "/api/v1/me/sessions", undefined, { token })).json.items;

  it("rotation never extends a sign-in past its start + session_max_age", async () => {
    await setConfig("session_max_age", String(10 * 3600));
    await setConfig("refresh_token_ttl", String(4 * 3600));
    const u = await h.signedInUser();
    expect(u.refresh_expires_in).toBe(4 * 3600);
    let token = u.refresh_token;
    // Refresh every three hours: the idle lifetime never runs out, the absolute one does.
    for (const hoursLeft of [7, 4, 1]) {
      h.clock.advance(3 * HOUR);
      const res = await h.call("POST", REFRESH, { refresh_token: token });
      expect(res.status).toBe(200);
      expect(res.json.refresh_expires_in).toBe(Math.min(4, hoursLeft) * 3600);
      token = res.json.refresh_token;
    }
    // Nor does an access token outlive the sign-in.
    const last = await h.call("POST", REFRESH, { refresh_token: token });
    expect(last.status).toBe(200);
    const { payload } = decodeJwt(last.json.access_token);
    expect(payload.exp * 1000).toBeLessThanOrEqual(h.clock.now() + HOUR);

    h.clock.advance(HOUR);
    const past = await h.call("POST", REFRESH, { refresh_token: last.json.refresh_token });
    expect(past.status).toBe(401);
    expect(past.json.code).toBe("invalid_refresh_token");
  });

  it("lowering session_max_age through the admin API ends older sign-ins for good: their access tokens too", async () => {
    await setConfig("access_token_ttl", "86400");
    try {
      const u = await h.signedInUser();
      const staff = await h.registerVerified();
      await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(staff.id).run();
      h.clock.advance(2 * HOUR);
      const admin = await h.login(staff.email, staff.password);
      const lowered = await h.call("PATCH", "/api/v1/admin/config", { session_max_age: 3600 }, { token: admin.access_token });
      expect(lowered.status).toBe(200);
      expect((await h.call("GET", "/api/v1/me", undefined, { token: u.access_token })).status).toBe(401);
      expect((await h.call("POST", REFRESH, { refresh_token: u.refresh_token })).status).toBe(401);
      // The staff member's own sign-in is an hour younger than the new limit: it stays.
      expect((await h.call("GET", "/api/v1/me", undefined, { token: admin.access_token })).status).toBe(200);
      // Putting the old value back does not bring the ended sign-ins back.
      const restored = await h.call("DELETE", "/api/v1/admin/config/session_max_age", undefined, { token: admin.access_token });
      expect(restored.status).toBe(200);
      expect((await h.call("POST", REFRESH, { refresh_token: u.refresh_token })).status).toBe(401);
      expect((await h.call("GET", "/api/v1/me", undefined, { token: u.access_token })).status).toBe(401);
    } finally {
      await setConfig("access_token_ttl", undefined);
    }
  });

  it("lowering session_max_age ends older sign-ins at once: no refresh, gone from /me/sessions", async () => {
    const u = await h.signedInUser();
    h.clock.advance(2 * HOUR);
    const fresh = await h.login(u.email, u.password);
    expect(await sessionsOf(fresh.access_token)).toHaveLength(2);

    await setConfig("session_max_age", "3600");
    expect((await h.call("POST", REFRESH, { refresh_token: u.refresh_token })).status).toBe(401);
    const listed = await sessionsOf(fresh.access_token);
    expect(listed).toHaveLength(1);
    expect(listed[0].current).toBe(true);
    expect((await h.call("POST", REFRESH, { refresh_token: fresh.refresh_token })).status).toBe(200);
  });

  it("an isolate that cannot read KV (and never could) extends no sign-in: its rotations keep the parent token's end", async () => {
    await setConfig("session_max_age", "3600");
    const u = await h.signedInUser();
    expect(u.refresh_expires_in).toBe(3600);
    // Another isolate, fresh, while KV is down: it knows only the defaults (30 days).
    const cold = harness({ start: h.clock.now() });
    const down = { env: { ...env, CONFIG: { get: () => Promise.reject(new Error("KV unavailable")) } as unknown as KVNamespace } };
    cold.clock.advance(50 * 60_000);
    const during = await cold.call("POST", REFRESH, { refresh_token: u.refresh_token }, down);
    expect(during.status, during.text).toBe(200);
    expect(during.json.refresh_expires_in).toBe(10 * 60);
    // An hour after the sign-in began, as the operator set: over, KV or not.
    cold.clock.advance(11 * 60_000);
    expect((await cold.call("POST", REFRESH, { refresh_token: during.json.refresh_token }, down)).status).toBe(401);
    expect((await cold.call("GET", "/api/v1/me", undefined, { token: during.json.access_token, ...down })).status).toBe(401);
  });

  it("a sign-in started by such an isolate is held to the operator's idle lifetime once KV answers again", async () => {
    await setConfig("refresh_token_ttl", "3600");
    const u = await h.registerVerified();
    const cold = harness({ start: h.clock.now() });
    const down = { env: { ...env, CONFIG: { get: () => Promise.reject(new Error("KV unavailable")) } as unknown as KVNamespace } };
    const login = await cold.call("POST", "/api/v1/auth/login", { email: u.email, password: u.password }, down);
    expect(login.status, login.text).toBe(200);
    // Issued under the defaults: 30 days on its face.
    expect(login.json.refresh_expires_in).toBeGreaterThan(3600);
    h.clock.set(cold.clock.now() + 2 * HOUR);
    expect((await h.call("POST", REFRESH, { refresh_token: login.json.refresh_token })).status).toBe(401);
  });

  it("/me/sessions follows a shortened idle lifetime: a sign-in that can no longer refresh is not listed, nor revocable, and none shows a later end", async () => {
    const idle = await h.signedInUser();
    h.clock.advance(2 * HOUR);
    const busy = await h.login(idle.email, idle.password);
    expect(await sessionsOf(busy.access_token)).toHaveLength(2);

    // Idle lifetime lowered to one hour: the sign-in unused for two hours cannot refresh any more…
    await setConfig("refresh_token_ttl", "3600");
    expect((await h.call("POST", REFRESH, { refresh_token: idle.refresh_token })).status).toBe(401);
    // …so it is no session of the user's: not listed, and ending it is a 404 like any ended one.
    const listed = await sessionsOf(busy.access_token);
    expect(listed.map((s: { current: boolean }) => s.current)).toEqual([true]);
    const idleId = decodeJwt(idle.access_token).payload.sid;
    expect((await h.call("DELETE", `/api/v1/me/sessions/${idleId}`, undefined, { token: busy.access_token })).status).toBe(404);
    // The one listed ends when the new idle lifetime says, not 30 days on as its token was issued.
    expect(Date.parse(listed[0].expires_at)).toBe(h.clock.now() + HOUR);

    // And a lowered absolute lifetime shows too: ninety minutes from the sign-in's start.
    await setConfig("refresh_token_ttl", undefined);
    await setConfig("session_max_age", "5400");
    h.clock.advance(10 * 60_000);
    const viewer = await h.login(idle.email, idle.password);
    const shown = (await sessionsOf(viewer.access_token)).find((s: { id: string }) => s.id === decodeJwt(busy.access_token).payload.sid);
    expect(Date.parse(shown.expires_at)).toBe(Date.parse(shown.created_at) + 5400_000);
  });

  it("defaults to 30 days and refuses values outside 1 hour – 1 year", async () => {
    const staff = await h.registerVerified();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(staff.id).run();
    const { access_token } = await h.login(staff.email, staff.password);
    const config = await h.call("GET", "/api/v1/admin/config", undefined, { token: access_token });
    expect(config.json.config.find((e: { key: string }) => e.key === "session_max_age")).toMatchObject({
      value: 30 * 86_400,
      min: 3600,
      max: 365 * 86_400,
    });
    for (const bad of [3599, 365 * 86_400 + 1]) {
      const res = await h.call("PATCH", "/api/v1/admin/config", { session_max_age: bad }, { token: access_token });
      expect(res.status).toBe(400);
    }
  });
});
