import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { REFRESH_RACE_GRACE_MS } from "../../src/features/auth/tokens.service";
import { decodeJwt, harness } from "../helpers";

const REFRESH = "/api/v1/auth/refresh";
const LOGOUT = "/api/v1/auth/logout";

async function tokenRows(userId: string) {
  const rows = await env.DB.prepare("SELECT * FROM refresh_tokens WHERE user_id = ? ORDER BY created_at, id")
    .bind(userId)
    .all<{ id: string; family_id: string; parent_id: string | null; revoked_at: number | null; revoked_reason: string | null }>();
  return rows.results;
}

describe("POST /auth/refresh", () => {
  const h = harness();

  it("rotates: returns a new pair, and the presented token stops working at once", async () => {
    const u = await h.signedInUser();
    const first = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect(first.status).toBe(200);
    expect(first.headers.get("cache-control")).toBe("no-store");
    expect(first.json).toMatchObject({ token_type: "Bearer", expires_in: 30, refresh_expires_in: 2_592_000 });
    expect(first.json.refresh_token).not.toBe(u.refresh_token);
    expect(decodeJwt(first.json.access_token).payload.sub).toBe(u.id);

    const me = await h.call("GET", "/api/v1/me", undefined, { token: first.json.access_token });
    expect(me.status).toBe(200);

    const rows = await tokenRows(u.id);
    expect(rows).toHaveLength(2);
    const parent = rows.find((r) => r.parent_id === null);
    const child = rows.find((r) => r.parent_id !== null);
    if (!parent || !child) throw new Error("expected a parent and a child token");
    expect(parent.revoked_reason).toBe("rotated");
    expect(child.parent_id).toBe(parent.id);
    expect(child.family_id).toBe(parent.family_id);
    expect(child.revoked_at).toBeNull();

    // The new token rotates in turn.
    const second = await h.call("POST", REFRESH, { refresh_token: first.json.refresh_token });
    expect(second.status).toBe(200);
  });

  it("revokes the whole family when a rotated refresh token is reused", async () => {
    const u = await h.signedInUser();
    const rotated = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect(rotated.status).toBe(200);
    h.clock.advance(REFRESH_RACE_GRACE_MS);

    const reuse = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect(reuse.status).toBe(401);
    expect(reuse.json.code).toBe("invalid_refresh_token");

    // The legitimate holder's newer token is dead too: both parties must sign in again.
    const successor = await h.call("POST", REFRESH, { refresh_token: rotated.json.refresh_token });
    expect(successor.status).toBe(401);
    const rows = await tokenRows(u.id);
    expect(rows.every((r) => r.revoked_at !== null)).toBe(true);
    expect(rows.some((r) => r.revoked_reason === "reuse")).toBe(true);
  });

  it("leaves the user's other sign-ins alone when one family is revoked for reuse", async () => {
    const u = await h.signedInUser();
    const other = await h.login(u.email, u.password);
    const rotated = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect(rotated.status).toBe(200);
    h.clock.advance(REFRESH_RACE_GRACE_MS);
    expect((await h.call("POST", REFRESH, { refresh_token: u.refresh_token })).status).toBe(401);
    expect((await h.call("POST", REFRESH, { refresh_token: other.refresh_token })).status).toBe(200);
  });

  it("lets exactly one of two concurrent refreshes with the same token win", async () => {
    const u = await h.signedInUser();
    const results = await Promise.all([
      h.call("POST", REFRESH, { refresh_token: u.refresh_token }),
      h.call("POST", REFRESH, { refresh_token: u.refresh_token }),
    ]);
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 401]);
    // The winner's new token stays usable whichever way the two requests interleaved.
    const live = (await tokenRows(u.id)).filter((r) => r.revoked_at === null);
    expect(live.length).toBe(1);
    const winner = results.find((r) => r.status === 200);
    expect((await h.call("POST", REFRESH, { refresh_token: winner?.json.refresh_token })).status).toBe(200);
  });

  it("treats a duplicate refresh right after rotation as a race, not theft, and still refuses it", async () => {
    const u = await h.signedInUser();
    const first = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    h.clock.advance(REFRESH_RACE_GRACE_MS - 1);
    const duplicate = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect(duplicate.status).toBe(401);
    const rows = await tokenRows(u.id);
    expect(rows.some((r) => r.revoked_reason === "reuse")).toBe(false);
    expect((await h.call("POST", REFRESH, { refresh_token: first.json.refresh_token })).status).toBe(200);
  });

  it("refuses an expired refresh token", async () => {
    const u = await h.signedInUser();
    h.clock.advance(2_592_000 * 1000 + 1000);
    const res = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe("invalid_refresh_token");
  });

  it("accepts a refresh token just before it expires", async () => {
    const u = await h.signedInUser();
    h.clock.advance(2_592_000 * 1000 - 1000);
    expect((await h.call("POST", REFRESH, { refresh_token: u.refresh_token })).status).toBe(200);
  });

  it("refuses to refresh for a disabled user", async () => {
    const u = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_active = 0 WHERE id = ?").bind(u.id).run();
    const res = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect(res.status).toBe(401);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: u.access_token })).status).toBe(401);
  });

  it("refuses to refresh for a deleted user", async () => {
    const u = await h.signedInUser();
    await env.DB.prepare("DELETE FROM users WHERE id = ?").bind(u.id).run();
    const res = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect(res.status).toBe(401);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: u.access_token })).status).toBe(401);
  });

  it("answers 401 for a well-formed but unknown token", async () => {
    const res = await h.call("POST", REFRESH, { refresh_token: "A".repeat(43) });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe("invalid_refresh_token");
  });

  it.each([
    ["too short", "abc"],
    ["bad characters", `${"A".repeat(42)}=`],
    ["not a string", 12345],
    ["too long", "A".repeat(44)],
  ])("answers 400 for a malformed token (%s)", async (_name, refresh_token) => {
    const res = await h.call("POST", REFRESH, { refresh_token });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("validation_failed");
  });

  it("limits refresh attempts per client IP", async () => {
    const ip = "198.51.100.99";
    const opts = { headers: { "cf-connecting-ip": ip } };
    const statuses = new Set<number>();
    for (let i = 0; i < 600; i++) statuses.add((await h.call("POST", REFRESH, { refresh_token: "C".repeat(43) }, opts)).status);
    expect([...statuses]).toEqual([401]);
    const u = await h.signedInUser();
    const blocked = await h.call("POST", REFRESH, { refresh_token: u.refresh_token }, opts);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
    // The token was not consumed by the refused attempt.
    expect((await h.call("POST", REFRESH, { refresh_token: u.refresh_token })).status).toBe(200);
  });

  it("answers 400 when refresh_token is missing or extra fields are sent", async () => {
    expect((await h.call("POST", REFRESH, {})).status).toBe(400);
    const u = await h.signedInUser();
    expect((await h.call("POST", REFRESH, { refresh_token: u.refresh_token, user_id: "x" })).status).toBe(400);
  });
});

describe("POST /auth/logout", () => {
  const h = harness();

  it("revokes the token so it no longer refreshes, and answers 204", async () => {
    const u = await h.signedInUser();
    const res = await h.call("POST", LOGOUT, { refresh_token: u.refresh_token });
    expect(res.status).toBe(204);
    expect(res.text).toBe("");
    expect((await h.call("POST", REFRESH, { refresh_token: u.refresh_token })).status).toBe(401);
  });

  it("revokes the whole family, including tokens rotated since", async () => {
    const u = await h.signedInUser();
    const rotated = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect((await h.call("POST", LOGOUT, { refresh_token: rotated.json.refresh_token })).status).toBe(204);
    expect((await h.call("POST", REFRESH, { refresh_token: rotated.json.refresh_token })).status).toBe(401);
    expect((await tokenRows(u.id)).every((r) => r.revoked_at !== null)).toBe(true);
    // Access tokens of the ended sign-in stop at once, not when they expire.
    expect((await h.call("GET", "/api/v1/me", undefined, { token: rotated.json.access_token })).status).toBe(401);
  });

  it("ends the sign-in when given a token rotated since (by a thief who copied it), recording one logout", async () => {
    const u = await h.signedInUser();
    const thief = await h.call("POST", REFRESH, { refresh_token: u.refresh_token });
    expect(thief.status).toBe(200);
    expect((await h.call("POST", LOGOUT, { refresh_token: u.refresh_token })).status).toBe(204);
    expect((await h.call("POST", REFRESH, { refresh_token: thief.json.refresh_token })).status).toBe(401);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: thief.json.access_token })).status).toBe(401);
    // Ending it again records nothing more.
    expect((await h.call("POST", LOGOUT, { refresh_token: thief.json.refresh_token })).status).toBe(204);
    const logouts = await env.DB.prepare("SELECT COUNT(*) AS n FROM activity WHERE user_id = ? AND type = 'logout'")
      .bind(u.id)
      .first<{ n: number }>();
    expect(logouts?.n).toBe(1);
  });

  it("is idempotent: an already revoked or unknown token also answers 204", async () => {
    const u = await h.signedInUser();
    expect((await h.call("POST", LOGOUT, { refresh_token: u.refresh_token })).status).toBe(204);
    expect((await h.call("POST", LOGOUT, { refresh_token: u.refresh_token })).status).toBe(204);
    expect((await h.call("POST", LOGOUT, { refresh_token: "B".repeat(43) })).status).toBe(204);
  });

  it("answers 400 for a malformed token", async () => {
    const res = await h.call("POST", LOGOUT, { refresh_token: "not a token" });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
  });

  it("does not touch the user's other sign-ins", async () => {
    const u = await h.signedInUser();
    const other = await h.login(u.email, u.password);
    expect((await h.call("POST", LOGOUT, { refresh_token: u.refresh_token })).status).toBe(204);
    expect((await h.call("POST", REFRESH, { refresh_token: other.refresh_token })).status).toBe(200);
  });
});

describe("POST /auth/logout-all", () => {
  const h = harness();

  it("revokes every refresh token and cuts off access tokens already issued", async () => {
    const u = await h.signedInUser();
    const second = await h.login(u.email, u.password);
    h.clock.advance(1000);

    const res = await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: u.access_token });
    expect(res.status).toBe(204);

    for (const token of [u.refresh_token, second.refresh_token]) {
      expect((await h.call("POST", REFRESH, { refresh_token: token })).status).toBe(401);
    }
    for (const token of [u.access_token, second.access_token]) {
      expect((await h.call("GET", "/api/v1/me", undefined, { token })).status).toBe(401);
    }
    expect((await tokenRows(u.id)).every((r) => r.revoked_reason === "logout_all")).toBe(true);

    // Signing in again works and its token is accepted.
    const fresh = await h.login(u.email, u.password);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: fresh.access_token })).status).toBe(200);
  });

  it("needs a bearer token", async () => {
    const res = await h.call("POST", "/api/v1/auth/logout-all");
    expect(res.status).toBe(401);
    expect(res.json.code).toBe("unauthorized");
  });

  it("leaves other users' sessions alone", async () => {
    const a = await h.signedInUser();
    const b = await h.signedInUser();
    h.clock.advance(1000);
    expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: a.access_token })).status).toBe(204);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: b.access_token })).status).toBe(200);
    expect((await h.call("POST", REFRESH, { refresh_token: b.refresh_token })).status).toBe(200);
  });
});
