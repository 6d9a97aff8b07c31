/**
 * Query budgets for the hot endpoints (issue 7): the exact D1 statements and round trips each
 * success path issues, counted by a wrapper on the real local binding. A new N+1, an extra
 * lookup or a write pulled out of its batch changes a count here and fails CI; when a change is
 * deliberate, update the pinned numbers together with the reason.
 */
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { CLEAR_COUNTER_IF_TOKEN, DIRECTORY, REFUND_HIT_IF_TOKEN, TIMELINE } from "../../bench/floor/exact";
import { hashPassword } from "../../src/features/auth/password-hash";
import { type D1Probe, probeD1 } from "../d1-wrap";
import { BASE, harness } from "../helpers";

/** The statements' first words, e.g. "select", "insert", "update", "delete", "with". */
const verbs = (probe: D1Probe) => probe.statements.map((sql) => sql.trimStart().split(/\s+/, 1)[0]?.toLowerCase());

describe("query budget", () => {
  const h = harness();
  let probe: D1Probe;
  let probed: Env;

  beforeEach(() => {
    probe = probeD1(env.DB);
    probed = { ...env, DB: probe.db };
  });

  it("reads /me with one query: the user joined with its profile", async () => {
    const u = await h.signedInUser();
    const res = await h.call("GET", "/api/v1/me", undefined, { token: u.access_token, env: probed });
    expect(res.status).toBe(200);
    expect(res.json.user.profile).toBeTruthy();
    // requireUser({ withProfile: true }) reads the user and its profile in one statement.
    expect(verbs(probe)).toEqual(["select"]);
    expect(probe.statements[0]).toMatch(/from "users" left join "profiles".*where "users"\."id" = \?/i);
    expect(probe.roundTrips).toBe(1);
  });

  it("rotates a refresh token in two round trips: rate-limit hit with lookup, then the rotation batch", async () => {
    const u = await h.signedInUser();
    const res = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token }, { env: probed });
    expect(res.status).toBe(200);
    // Batch 1: countHit upsert and token+user lookup by hash. Batch 2: conditional insert and conditional revoke.
    expect(verbs(probe)).toEqual(["insert", "select", "insert", "update"]);
    expect(probe.statements[1]).toMatch(/"token_hash" = \?/);
    expect(probe.roundTrips).toBe(2);
  });

  it("signs in in two round trips: the account with both failure counters reserved, then one batch", async () => {
    const u = await h.registerVerified();
    const res = await h.call("POST", "/api/v1/auth/login", { email: u.email, password: u.password }, { env: probed });
    expect(res.status).toBe(200);
    // Batch 1: the user by email, and this attempt reserved on the IP's and the account's counters
    // (upserts). Batch 2: refresh-token insert, account counter cleared, IP reservation returned,
    // activity entry.
    expect(verbs(probe)).toEqual(["select", "insert", "insert", "insert", "delete", "update", "insert"]);
    expect(probe.statements[0]).toMatch(/from "users" where "users"\."email" = \?/);
    expect(probe.statements[1]).toMatch(/insert into "rate_limits"/);
    expect(probe.statements[2]).toMatch(/insert into "rate_limits"/);
    // The counters are released only if the token was written (as the benchmark's exact floor does).
    expect(probe.statements.slice(4, 6)).toEqual([CLEAR_COUNTER_IF_TOKEN, REFUND_HIT_IF_TOKEN]);
    expect(probe.roundTrips).toBe(2);
  });

  it("reads a page of the public lists in one statement, the one the benchmark's exact floor runs", async () => {
    for (const [path, floor] of [
      ["/api/v1/statuses", TIMELINE],
      ["/api/v1/profiles", DIRECTORY],
    ] as const) {
      probe.reset();
      const res = await h.call("GET", path, undefined, { env: probed });
      expect(res.status, path).toBe(200);
      expect(probe.statements, path).toEqual([floor]);
    }
  });

  it("finds a public profile page by its username with one lookup, not a search of the directory", async () => {
    const u = await h.registerVerified();
    for (const key of [u.username, u.username.toUpperCase(), u.id]) {
      probe.reset();
      const res = await h.app.fetch(new Request(`${BASE}/people/${key}`, { headers: { "cf-connecting-ip": "198.51.100.90" } }), probed);
      expect(res.status, key).toBe(200);
      expect(await res.text()).toContain(`@${u.username}`);
      const lookups = probe.statements.filter((sql) => /from "users"/.test(sql));
      expect(lookups, key).toHaveLength(1);
    }
  });

  it("upgrades an outdated password hash inside the sign-in batch, not in another round trip", async () => {
    const u = await h.registerVerified();
    const outdated = await hashPassword(u.password, "pbkdf2");
    await env.DB.prepare("UPDATE users SET password_hash = ? WHERE email = ?").bind(outdated, u.email).run();
    const res = await h.call("POST", "/api/v1/auth/login", { email: u.email, password: u.password }, { env: probed });
    expect(res.status).toBe(200);
    expect(verbs(probe)).toEqual(["select", "insert", "insert", "insert", "delete", "update", "insert", "update"]);
    expect(probe.roundTrips).toBe(2);
    const row = await env.DB.prepare("SELECT password_hash FROM users WHERE email = ?").bind(u.email).first<{ password_hash: string }>();
    expect(row?.password_hash).toMatch(/^\$argon2id\$/);
  });
});
