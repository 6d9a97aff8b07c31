import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CONFIG_KEY_NAMES } from "../../src/config/config.definitions";
import { probeD1 } from "../d1-wrap";
import { decodeJwt, harness, setConfig, unique } from "../helpers";
import { capturingEnv } from "../mail-helpers";

const h = harness();
const ADMIN = "/api/v1/admin";

/** The real local KV, except that writes of `key` fail, and with `deletes` every delete too. */
function refusingKv(key: string, options: { deletes?: boolean } = {}): KVNamespace {
  const refused = () => Promise.reject(new Error("KV unavailable"));
  return {
    get: (...args: Parameters<KVNamespace["get"]>) => env.CONFIG.get(...args),
    delete: (k: string) => (options.deletes ? refused() : env.CONFIG.delete(k)),
    put: (k: string, value: string) => (k === key ? refused() : env.CONFIG.put(k, value)),
  } as unknown as KVNamespace;
}

/** The real local KV, except that writes and deletes of `key` land and then report a failure (a lost reply). */
function landingThenFailingKv(key: string): KVNamespace {
  const lost = () => Promise.reject(new Error("KV: network connection lost"));
  return {
    get: (...args: Parameters<KVNamespace["get"]>) => env.CONFIG.get(...args),
    delete: async (k: string) => {
      await env.CONFIG.delete(k);
      if (k === key) return lost();
    },
    put: async (k: string, value: string) => {
      await env.CONFIG.put(k, value);
      if (k === key) return lost();
    },
  } as unknown as KVNamespace;
}

async function staffUser(hh = h) {
  const user = await hh.registerVerified();
  await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(user.id).run();
  return { ...user, ...(await hh.login(user.email, user.password)) };
}

/** Audit entries about `target`, oldest first; by `actorId` only when given (config keys are shared targets). */
async function auditFor(target: string, actorId?: string) {
  const { results } = await env.DB.prepare(
    "SELECT * FROM admin_audit WHERE target = ?1 AND (?2 IS NULL OR actor_id = ?2) ORDER BY created_at, id",
  )
    .bind(target, actorId ?? null)
    .all();
  return results as { actor_id: string; action: string; old_value: string | null; new_value: string | null }[];
}

afterEach(async () => {
  vi.restoreAllMocks();
  for (const key of CONFIG_KEY_NAMES) await setConfig(key, undefined);
});

describe("admin access control", () => {
  /** Every admin route, with a request that would succeed for staff. */
  const routes = (victimId: string): [string, string, unknown?][] => [
    ["GET", "/config"],
    ["PATCH", "/config", { otp_max_attempts: 7 }],
    ["DELETE", "/config/otp_max_attempts"],
    ["GET", "/audit"],
    ["GET", "/users?q=a"],
    ["GET", `/users/${victimId}`],
    ["PATCH", `/users/${victimId}`, { email_verified: true }],
    ["POST", `/users/${victimId}/logout-all`],
  ];

  it("answers 401 on every admin route without an access token", async () => {
    const victim = await h.registerVerified();
    for (const [method, path, body] of routes(victim.id)) {
      const res = await h.call(method, `${ADMIN}${path}`, body);
      expect(res.status, `${method} ${path}`).toBe(401);
    }
  });

  it("answers 403 on every admin route to a signed-in user who is not staff, and changes nothing", async () => {
    const victim = await h.signedInUser();
    const user = await h.signedInUser();
    for (const [method, path, body] of routes(victim.id)) {
      const res = await h.call(method, `${ADMIN}${path}`, body, { token: user.access_token });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.json.code).toBe("forbidden");
    }
    expect(await env.CONFIG.get("otp_max_attempts")).toBeNull();
    const me = await h.call("GET", "/api/v1/me", undefined, { token: victim.access_token });
    expect(me.status).toBe(200);
  });

  it("lets a staff user use every admin route", async () => {
    const admin = await staffUser();
    const victim = await h.registerVerified();
    for (const [method, path, body] of routes(victim.id)) {
      const res = await h.call(method, `${ADMIN}${path}`, body, { token: admin.access_token });
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(method === "POST" ? 204 : 200);
    }
  });

  it("refuses a user whose staff flag was removed, on their very next request", async () => {
    const admin = await staffUser();
    const other = await staffUser();
    expect((await h.call("GET", `${ADMIN}/config`, undefined, { token: other.access_token })).status).toBe(200);
    const demote = await h.call("PATCH", `${ADMIN}/users/${other.id}`, { is_staff: false }, { token: admin.access_token });
    expect(demote.status).toBe(200);
    expect(demote.json.is_staff).toBe(false);
    expect((await h.call("GET", `${ADMIN}/config`, undefined, { token: other.access_token })).status).toBe(403);
  });
});

describe("GET /admin/config", () => {
  it("lists every key with its value, default, bounds, source and description", async () => {
    const admin = await staffUser();
    await setConfig("refresh_token_ttl", "3600");
    const res = await h.call("GET", `${ADMIN}/config`, undefined, { token: admin.access_token });
    expect(res.status).toBe(200);
    expect(res.json.config.map((e: { key: string }) => e.key)).toEqual(CONFIG_KEY_NAMES);
    const byKey = Object.fromEntries(res.json.config.map((e: { key: string }) => [e.key, e]));
    expect(byKey.access_token_ttl).toMatchObject({ value: 30, default: 30, source: "default", valid: true, min: 5, max: 86_400 });
    expect(byKey.access_token_ttl.description).toMatch(/Access-token lifetime/);
    expect(byKey.refresh_token_ttl).toMatchObject({ value: 3600, source: "kv", valid: true, stored: "3600" });
    expect(byKey.require_email_verification).toMatchObject({ value: true, min: null, max: null });
  });

  it("shows an invalid KV value as valid: false with the default in force", async () => {
    const admin = await staffUser();
    await setConfig("otp_ttl", "ten minutes");
    await setConfig("access_token_ttl", "4");
    const res = await h.call("GET", `${ADMIN}/config`, undefined, { token: admin.access_token });
    const byKey = Object.fromEntries(res.json.config.map((e: { key: string }) => [e.key, e]));
    expect(byKey.otp_ttl).toMatchObject({ value: 600, default: 600, source: "kv", valid: false, stored: "ten minutes" });
    expect(byKey.access_token_ttl).toMatchObject({ value: 30, source: "kv", valid: false, stored: "4" });
  });
});

describe("PATCH /admin/config", () => {
  it("writes every valid value to KV and answers the new effective configuration", async () => {
    const admin = await staffUser();
    const res = await h.call(
      "PATCH",
      `${ADMIN}/config`,
      { access_token_ttl: 120, require_email_verification: false, otp_ttl: "900" },
      { token: admin.access_token },
    );
    expect(res.status).toBe(200);
    const byKey = Object.fromEntries(res.json.config.map((e: { key: string }) => [e.key, e]));
    expect(byKey.access_token_ttl).toMatchObject({ value: 120, source: "kv" });
    expect(byKey.require_email_verification).toMatchObject({ value: false, source: "kv" });
    expect(byKey.otp_ttl).toMatchObject({ value: 900, source: "kv" });
    expect(await env.CONFIG.get("access_token_ttl")).toBe("120");
    expect(await env.CONFIG.get("require_email_verification")).toBe("false");
    expect(await env.CONFIG.get("otp_ttl")).toBe("900");
  });

  it("rejects the whole request naming the bad value when one value is invalid, and writes nothing", async () => {
    const admin = await staffUser();
    const res = await h.call(
      "PATCH",
      `${ADMIN}/config`,
      { access_token_ttl: 120, refresh_token_ttl: 10, otp_max_attempts: 2.5 },
      { token: admin.access_token },
    );
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    expect(res.json.errors.map((e: { path: string }) => e.path).sort()).toEqual(["otp_max_attempts", "refresh_token_ttl"]);
    for (const key of CONFIG_KEY_NAMES) expect(await env.CONFIG.get(key)).toBeNull();
    expect(await auditFor("access_token_ttl", admin.id)).toEqual([]);
  });

  it("rejects an unknown key or a value of the wrong type with 400 and writes nothing", async () => {
    const admin = await staffUser();
    const unknownKey = await h.call("PATCH", `${ADMIN}/config`, { access_token_ttl: 60, session_ttl: 60 }, { token: admin.access_token });
    expect(unknownKey.status).toBe(400);
    expect(unknownKey.json.errors[0].path).toBe("session_ttl");
    const wrongType = await h.call(
      "PATCH",
      `${ADMIN}/config`,
      { access_token_ttl: 60, require_email_verification: "yes" },
      { token: admin.access_token },
    );
    expect(wrongType.status).toBe(400);
    expect(wrongType.json.errors[0].path).toBe("require_email_verification");
    const empty = await h.call("PATCH", `${ADMIN}/config`, {}, { token: admin.access_token });
    expect(empty.status).toBe(400);
    expect(await env.CONFIG.get("access_token_ttl")).toBeNull();
  });

  it("takes effect on the next login even when this isolate had the old value cached", async () => {
    const cached = harness({ configCacheMs: 60_000 });
    const admin = await staffUser(cached);
    const before = await cached.signedInUser();
    expect(before.expires_in).toBe(30);
    const res = await cached.call("PATCH", `${ADMIN}/config`, { access_token_ttl: 120 }, { token: admin.access_token });
    expect(res.status).toBe(200);
    const after = await cached.login(before.email, before.password);
    expect(after.expires_in).toBe(120);
    const { payload } = decodeJwt(after.access_token);
    expect(payload.exp - payload.iat).toBe(120);
  });

  it("records one audit entry per changed key, with who, old and new value", async () => {
    const admin = await staffUser();
    await setConfig("otp_ttl", "900");
    const res = await h.call(
      "PATCH",
      `${ADMIN}/config`,
      { access_token_ttl: 45, otp_ttl: 900, otp_max_attempts: 3 },
      { token: admin.access_token },
    );
    expect(res.status).toBe(200);
    expect(await auditFor("access_token_ttl", admin.id)).toMatchObject([{ action: "config.set", old_value: null, new_value: "45" }]);
    expect(await auditFor("otp_max_attempts", admin.id)).toMatchObject([{ old_value: null, new_value: "3" }]);
    // Unchanged (already "900"): nothing to record.
    expect(await auditFor("otp_ttl", admin.id)).toEqual([]);
  });

  it("changes nothing, audit included, when KV refuses one of the writes", async () => {
    const admin = await staffUser();
    const flakyKv = refusingKv("otp_ttl");
    const res = await h.call(
      "PATCH",
      `${ADMIN}/config`,
      { access_token_ttl: 77, otp_ttl: 900 },
      { token: admin.access_token, env: { ...env, CONFIG: flakyKv } },
    );
    expect(res.status).toBe(503);
    expect(res.json.code).toBe("service_unavailable");
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    expect(await env.CONFIG.get("access_token_ttl")).toBeNull();
    expect(await auditFor("access_token_ttl", admin.id)).toEqual([]);
  });

  it("says which change stayed, and keeps its audit entry, when KV cannot put a landed write back", async () => {
    const admin = await staffUser();
    // otp_ttl is refused, and so is putting access_token_ttl back (a delete, as it had no value).
    const flakyKv = refusingKv("otp_ttl", { deletes: true });
    try {
      const res = await h.call(
        "PATCH",
        `${ADMIN}/config`,
        { access_token_ttl: 78, otp_ttl: 900 },
        { token: admin.access_token, env: { ...env, CONFIG: flakyKv } },
      );
      expect(res.status).toBe(503);
      expect(res.json.detail).not.toContain("nothing was changed");
      expect(res.json.detail).toContain("access_token_ttl");
      expect(await env.CONFIG.get("access_token_ttl")).toBe("78");
      expect(await auditFor("access_token_ttl", admin.id)).toMatchObject([{ action: "config.set", new_value: "78" }]);
      // otp_ttl's write was refused, and so was putting it back: it may have landed (KV's reads
      // would not tell for sure), so it is named and keeps its entry too.
      expect(res.json.detail).toContain("otp_ttl");
      expect(await auditFor("otp_ttl", admin.id)).toMatchObject([{ action: "config.set", new_value: "900" }]);
    } finally {
      await env.CONFIG.delete("access_token_ttl");
    }
  });

  it("a write whose reply was lost, and its put-back's too, is answered as maybe in force and stays audited", async () => {
    const admin = await staffUser();
    vi.spyOn(console, "error").mockImplementation(() => {});
    const res = await h.call(
      "PATCH",
      `${ADMIN}/config`,
      { otp_ttl: 900 },
      { token: admin.access_token, env: { ...env, CONFIG: landingThenFailingKv("otp_ttl") } },
    );
    expect(res.status).toBe(503);
    // Here the put-back landed, but nothing could say so: never a value in force without its entry.
    expect(res.json.detail).toContain("otp_ttl may now have the new value (audited)");
    expect(await auditFor("otp_ttl", admin.id)).toMatchObject([{ action: "config.set", new_value: "900" }]);
  });

  it("a reset whose delete reply was lost, and its put-back's too, is answered as maybe in force and stays audited", async () => {
    const admin = await staffUser();
    vi.spyOn(console, "error").mockImplementation(() => {});
    await setConfig("otp_max_attempts", "3");
    const res = await h.call("DELETE", `${ADMIN}/config/otp_max_attempts`, undefined, {
      token: admin.access_token,
      env: { ...env, CONFIG: landingThenFailingKv("otp_max_attempts") },
    });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
    expect(res.json.detail).toContain("may be reset to its default (audited)");
    expect(await auditFor("otp_max_attempts", admin.id)).toMatchObject([{ action: "config.delete", old_value: "3", new_value: null }]);
  });

  it("writes nothing to KV when the audit entry cannot be recorded", async () => {
    const admin = await staffUser();
    const probe = probeD1(env.DB);
    probe.failWhen(/insert into "admin_audit"/i);
    const res = await h.call(
      "PATCH",
      `${ADMIN}/config`,
      { access_token_ttl: 66 },
      { token: admin.access_token, env: { ...env, DB: probe.db } },
    );
    expect(res.status).toBe(500);
    expect(await env.CONFIG.get("access_token_ttl")).toBeNull();
  });
});

describe("two staff members changing one config key at once", () => {
  afterEach(() => setConfig("access_token_ttl", undefined));

  /** The real local KV, except that the first write of `key` first lets `meanwhile` run. */
  function kvLettingThrough(key: string, meanwhile: () => Promise<void>): { kv: KVNamespace; staged: { done: boolean } } {
    const staged = { done: false };
    const kv = {
      get: (...args: Parameters<KVNamespace["get"]>) => env.CONFIG.get(...args),
      list: (...args: Parameters<KVNamespace["list"]>) => env.CONFIG.list(...args),
      delete: (k: string) => env.CONFIG.delete(k),
      put: async (k: string, value: string) => {
        if (!staged.done && k === key) {
          staged.done = true;
          await meanwhile();
        }
        return env.CONFIG.put(k, value);
      },
    } as unknown as KVNamespace;
    return { kv, staged };
  }

  /** The value of the newest config entry the audit trail holds for `key`, as the console shows it first. */
  async function newestAudited(key: string) {
    return (
      await env.DB.prepare(
        "SELECT new_value FROM admin_audit WHERE target = ? AND action LIKE 'config.%' ORDER BY created_at DESC, id DESC LIMIT 1",
      )
        .bind(key)
        .first<{ new_value: string | null }>()
    )?.new_value;
  }

  /**
   * Two staff members set `key`: a's change is audited first; b's is audited and written (a second
   * later) while a's KV write is on its way. Both answer 200.
   */
  async function changedAtOnce(key: string, values: { a: number; b: number }) {
    const [a, b] = [await staffUser(), await staffUser()];
    const { kv, staged } = kvLettingThrough(key, async () => {
      h.clock.advance(1000);
      expect((await h.call("PATCH", `${ADMIN}/config`, { [key]: values.b }, { token: b.access_token })).status).toBe(200);
    });
    const res = await h.call("PATCH", `${ADMIN}/config`, { [key]: values.a }, { token: a.access_token, env: { ...env, CONFIG: kv } });
    expect(staged.done).toBe(true);
    expect(res.status, res.text).toBe(200);
  }

  it("leave in force the value of the audit trail's newest entry, whichever KV write lands last", async () => {
    await setConfig("access_token_ttl", "45");
    await changedAtOnce("access_token_ttl", { a: 120, b: 600 });
    expect(await env.CONFIG.get("access_token_ttl")).toBe(await newestAudited("access_token_ttl"));
  });

  it("end only the sign-ins older than the session_max_age left in force, not the one the newer change replaced", async () => {
    const user = await h.signedInUser();
    h.clock.advance(2 * 3600_000); // user's sign-in is two hours old
    // a asks for one hour; b, audited later, for a day.
    await changedAtOnce("session_max_age", { a: 3600, b: 86400 });
    expect(await env.CONFIG.get("session_max_age")).toBe("86400");
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: user.refresh_token })).status).toBe(200);
    await setConfig("session_max_age", undefined);
  });

  it("read the trail's newest entries at the primary, not through the request's session, where a replica may not have them yet", async () => {
    const admin = await staffUser();
    const reads: { via: "session" | "binding"; sql: string }[] = [];
    const recording = <T extends object>(target: T, via: "session" | "binding"): T =>
      new Proxy(target, {
        get(t, property) {
          if (property === "prepare") {
            return (sql: string) => {
              reads.push({ via, sql });
              return (t as unknown as D1Database).prepare(sql);
            };
          }
          if (property === "withSession") return (arg?: string) => recording((t as unknown as D1Database).withSession(arg), "session");
          const value = Reflect.get(t, property);
          return typeof value === "function" ? value.bind(t) : value;
        },
      });
    const res = await h.call(
      "PATCH",
      `${ADMIN}/config`,
      { access_token_ttl: 321 },
      { token: admin.access_token, env: { ...env, DB: recording(env.DB, "binding") } },
    );
    expect(res.status, res.text).toBe(200);
    const settle = reads.filter((r) => /from "admin_audit" .*"newer"/i.test(r.sql));
    expect(settle.map((r) => r.via)).toEqual(["binding"]);
  });
});

describe("DELETE /admin/config/{key}", () => {
  it("puts a key back to its default and audits the change", async () => {
    const admin = await staffUser();
    await setConfig("otp_max_attempts", "9");
    const res = await h.call("DELETE", `${ADMIN}/config/otp_max_attempts`, undefined, { token: admin.access_token });
    expect(res.status).toBe(200);
    const entry = res.json.config.find((e: { key: string }) => e.key === "otp_max_attempts");
    expect(entry).toMatchObject({ value: 5, source: "default", stored: null });
    expect(await env.CONFIG.get("otp_max_attempts")).toBeNull();
    expect(await auditFor("otp_max_attempts", admin.id)).toMatchObject([{ action: "config.delete", old_value: "9", new_value: null }]);
  });

  it("answers 404 for a key that does not exist", async () => {
    const admin = await staffUser();
    const res = await h.call("DELETE", `${ADMIN}/config/session_ttl`, undefined, { token: admin.access_token });
    expect(res.status).toBe(404);
  });
});

describe("GET /admin/audit", () => {
  it("pages through the trail newest first with an opaque cursor", async () => {
    // The trail is global: a clock far ahead of every other test makes these entries the newest.
    const later = harness({ start: Date.now() + 100 * 365 * 86_400_000 });
    const admin = await staffUser(later);
    for (const value of [11, 12, 13]) {
      later.clock.advance(1000);
      await later.call("PATCH", `${ADMIN}/config`, { otp_max_attempts: value }, { token: admin.access_token });
    }
    const first = await later.call("GET", `${ADMIN}/audit?limit=2`, undefined, { token: admin.access_token });
    expect(first.status).toBe(200);
    expect(first.json.items.map((e: { new_value: string }) => e.new_value)).toEqual(["13", "12"]);
    expect(first.json.items[0]).toMatchObject({
      actor_id: admin.id,
      actor_email: admin.email,
      action: "config.set",
      target: "otp_max_attempts",
      old_value: "12",
    });
    expect(typeof first.json.next_cursor).toBe("string");
    const second = await later.call("GET", `${ADMIN}/audit?limit=2&cursor=${first.json.next_cursor}`, undefined, {
      token: admin.access_token,
    });
    expect(second.json.items[0].new_value).toBe("11");
  });

  it("keeps naming a staff member whose account was deleted since, unlike the operator's CLI (no actor, no address)", async () => {
    // Later still than the test above, so these entries are the newest.
    const later = harness({ start: Date.now() + 200 * 365 * 86_400_000 });
    const [leaving, staying] = [await staffUser(later), await staffUser(later)];
    later.clock.advance(1000);
    expect((await later.call("PATCH", `${ADMIN}/config`, { otp_max_attempts: 7 }, { token: leaving.access_token })).status).toBe(200);
    const gone = await later.call("DELETE", "/api/v1/me", { current_password: leaving.password }, { token: leaving.access_token });
    expect(gone.status).toBe(204);
    const res = await later.call("GET", `${ADMIN}/audit?limit=1`, undefined, { token: staying.access_token });
    expect(res.json.items[0]).toMatchObject({ actor_id: null, actor_email: leaving.email, action: "config.set", new_value: "7" });
  });

  it("names the deleted staff member also in entries written before addresses were recorded with them", async () => {
    const later = harness({ start: Date.now() + 250 * 365 * 86_400_000 });
    const [leaving, staying] = [await staffUser(later), await staffUser(later)];
    later.clock.advance(1000);
    expect((await later.call("PATCH", `${ADMIN}/config`, { otp_max_attempts: 8 }, { token: leaving.access_token })).status).toBe(200);
    await env.DB.prepare("UPDATE admin_audit SET actor_email = NULL WHERE actor_id = ?").bind(leaving.id).run(); // as before migration 0004
    expect((await later.call("DELETE", "/api/v1/me", { current_password: leaving.password }, { token: leaving.access_token })).status).toBe(
      204,
    );
    const res = await later.call("GET", `${ADMIN}/audit?limit=1`, undefined, { token: staying.access_token });
    expect(res.json.items[0]).toMatchObject({ actor_id: null, actor_email: leaving.email, new_value: "8" });
  });

  it("refuses a forged cursor and an out-of-range limit with 400", async () => {
    const admin = await staffUser();
    expect((await h.call("GET", `${ADMIN}/audit?cursor=not-a-cursor`, undefined, { token: admin.access_token })).status).toBe(400);
    expect((await h.call("GET", `${ADMIN}/audit?limit=0`, undefined, { token: admin.access_token })).status).toBe(400);
    expect((await h.call("GET", `${ADMIN}/audit?limit=1000`, undefined, { token: admin.access_token })).status).toBe(400);
  });
});

describe("GET /admin/users", () => {
  it("finds accounts by email or username prefix and pages through them", async () => {
    const admin = await staffUser();
    const prefix = unique("srch");
    const a = await h.registerVerified({ email: `${prefix}.a@example.com` });
    h.clock.advance(1000);
    const b = await h.registerVerified({ email: `${prefix}.b@example.com` });
    h.clock.advance(1000);
    const c = await h.registerVerified({ username: `${prefix}c` });
    const page1 = await h.call("GET", `${ADMIN}/users?q=${prefix.toUpperCase()}&limit=2`, undefined, { token: admin.access_token });
    expect(page1.status).toBe(200);
    expect(page1.json.items.map((u: { id: string }) => u.id)).toEqual([c.id, b.id]);
    const page2 = await h.call("GET", `${ADMIN}/users?q=${prefix}&limit=2&cursor=${page1.json.next_cursor}`, undefined, {
      token: admin.access_token,
    });
    expect(page2.json.items.map((u: { id: string }) => u.id)).toEqual([a.id]);
    expect(page2.json.next_cursor).toBeNull();
  });

  it("treats LIKE wildcards in the search literally", async () => {
    const admin = await staffUser();
    await h.registerVerified();
    for (const q of ["%", "_", "%25"]) {
      const res = await h.call("GET", `${ADMIN}/users?q=${encodeURIComponent(q)}`, undefined, { token: admin.access_token });
      expect(res.status).toBe(200);
      expect(res.json.items, q).toEqual([]);
    }
  });

  it("shows one account with its live sessions, and 404 for an unknown id", async () => {
    const admin = await staffUser();
    const user = await h.signedInUser();
    const res = await h.call("GET", `${ADMIN}/users/${user.id}`, undefined, { token: admin.access_token });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ id: user.id, email: user.email, is_active: true, is_staff: false, active_sessions: 1 });
    expect(res.json.password_hash).toBeUndefined();
    expect((await h.call("GET", `${ADMIN}/users/nope`, undefined, { token: admin.access_token })).status).toBe(404);
  });

  it("counts as live only the sessions the lifetimes in force let refresh", async () => {
    const user = await h.signedInUser();
    h.clock.advance(2 * 3_600_000);
    await h.login(user.email, user.password);
    const admin = await staffUser();
    const shown = async () =>
      (await h.call("GET", `${ADMIN}/users/${user.id}`, undefined, { token: admin.access_token })).json.active_sessions;
    expect(await shown()).toBe(2);
    // An idle lifetime lowered to an hour: the sign-in unused for two hours can no longer refresh.
    await setConfig("refresh_token_ttl", "3600");
    expect(await shown()).toBe(1);
  });
});

describe("PATCH /admin/users/{id}", () => {
  /** Staff make `change` to a user signed in twice; every access and refresh token of the user then stops working. */
  async function changeEndingSessions(change: { is_active?: boolean; email_verified?: boolean }) {
    const admin = await staffUser();
    const victim = await h.signedInUser();
    const second = await h.login(victim.email, victim.password);
    // iat has whole-second precision: tokens issued in the cut-off's second would survive.
    h.clock.advance(1500);
    const res = await h.call("PATCH", `${ADMIN}/users/${victim.id}`, change, { token: admin.access_token });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ ...change, active_sessions: 0 });
    for (const tokens of [victim, second]) {
      expect((await h.call("GET", "/api/v1/me", undefined, { token: tokens.access_token })).status).toBe(401);
      expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: tokens.refresh_token })).status).toBe(401);
    }
    const { results } = await env.DB.prepare("SELECT revoked_reason FROM refresh_tokens WHERE user_id = ?").bind(victim.id).all();
    expect(results.map((r) => r.revoked_reason)).toEqual(["admin", "admin"]);
    return { admin, victim };
  }

  it("disabling a user kills their refresh tokens and their /me at once, and is audited", async () => {
    const { admin, victim } = await changeEndingSessions({ is_active: false });
    expect((await h.call("POST", "/api/v1/auth/login", { email: victim.email, password: victim.password })).status).toBe(401);
    expect(await auditFor(victim.id)).toMatchObject([
      { actor_id: admin.id, action: "user.update", old_value: '{"is_active":true}', new_value: '{"is_active":false}' },
    ]);

    const enable = await h.call("PATCH", `${ADMIN}/users/${victim.id}`, { is_active: true }, { token: admin.access_token });
    expect(enable.json.is_active).toBe(true);
    expect((await h.call("POST", "/api/v1/auth/login", { email: victim.email, password: victim.password })).status).toBe(200);
  });

  it("marking an email unverified ends the account's sessions, as disabling does: its access and refresh tokens stop working", async () => {
    const { admin, victim } = await changeEndingSessions({ email_verified: false });
    expect(await auditFor(victim.id)).toMatchObject([
      { actor_id: admin.id, old_value: '{"email_verified":true}', new_value: '{"email_verified":false}' },
    ]);
  });

  it("changes nothing when the audit entry cannot be written (flag, revocation and audit are one batch)", async () => {
    const admin = await staffUser();
    const victim = await h.signedInUser();
    const probe = probeD1(env.DB);
    probe.failWhen(/insert into "admin_audit"/i);
    const res = await h.call(
      "PATCH",
      `${ADMIN}/users/${victim.id}`,
      { is_active: false },
      { token: admin.access_token, env: { ...env, DB: probe.db } },
    );
    expect(res.status).toBe(500);
    const row = await env.DB.prepare("SELECT is_active FROM users WHERE id = ?").bind(victim.id).first();
    expect(row?.is_active).toBe(1);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: victim.refresh_token })).status).toBe(200);
  });

  it("refuses with 409 when staff would remove their own staff flag, disable themselves or mark their own address unverified", async () => {
    const admin = await staffUser();
    // Marking it unverified ends every sign-in and bars password sign-in: the only staff account
    // would lock itself out as surely as by disabling itself.
    for (const body of [{ is_staff: false }, { is_active: false }, { is_active: false, is_staff: true }, { email_verified: false }]) {
      const res = await h.call("PATCH", `${ADMIN}/users/${admin.id}`, body, { token: admin.access_token });
      expect(res.status, JSON.stringify(body)).toBe(409);
    }
    const row = await env.DB.prepare("SELECT is_staff, is_active, email_verified FROM users WHERE id = ?").bind(admin.id).first();
    expect(row).toMatchObject({ is_staff: 1, is_active: 1, email_verified: 1 });
    expect((await h.call("GET", `${ADMIN}/config`, undefined, { token: admin.access_token })).status).toBe(200);
    expect(await auditFor(admin.id)).toEqual([]);
  });

  it("promotes a user to staff and marks an email verified", async () => {
    const admin = await staffUser();
    const user = await h.signedInUser();
    const res = await h.call("PATCH", `${ADMIN}/users/${user.id}`, { is_staff: true, email_verified: true }, { token: admin.access_token });
    expect(res.status).toBe(200);
    // email_verified was already true: only the staff flag is recorded as changed.
    expect(await auditFor(user.id)).toMatchObject([{ old_value: '{"is_staff":false}', new_value: '{"is_staff":true}' }]);
    expect((await h.call("GET", `${ADMIN}/config`, undefined, { token: user.access_token })).status).toBe(200);
  });

  it("marking an unverified address verified ends the password whoever registered it set (pre-registration hijacking)", async () => {
    const admin = await staffUser();
    // A squatter registers the victim's address; the victim asks staff to confirm it.
    const email = `${unique("victim")}@example.com`;
    const squatters = "squatters-own-secret-1";
    const registered = await h.call("POST", "/api/v1/auth/register", { email, password: squatters });
    expect(registered.status, registered.text).toBe(201);
    const id = registered.json.user.id as string;

    const res = await h.call("PATCH", `${ADMIN}/users/${id}`, { email_verified: true }, { token: admin.access_token });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ email_verified: true });
    expect((await h.call("POST", "/api/v1/auth/login", { email, password: squatters })).status).toBe(401);
    const activity = await env.DB.prepare("SELECT type, details FROM activity WHERE user_id = ? AND type = 'email_verified'")
      .bind(id)
      .all();
    expect(activity.results).toEqual([{ type: "email_verified", details: JSON.stringify({ method: "admin" }) }]);

    // Changing another flag of a verified account leaves its password alone.
    const owner = await h.registerVerified();
    await h.call("PATCH", `${ADMIN}/users/${owner.id}`, { is_staff: true }, { token: admin.access_token });
    expect((await h.call("POST", "/api/v1/auth/login", { email: owner.email, password: owner.password })).status).toBe(200);
  });

  it("refuses fields other than the three flags, and non-boolean values, with 400", async () => {
    const admin = await staffUser();
    const user = await h.registerVerified();
    for (const body of [{ is_admin: true }, { password_hash: "x" }, { is_active: "false" }, {}]) {
      const res = await h.call("PATCH", `${ADMIN}/users/${user.id}`, body, { token: admin.access_token });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect((await h.call("PATCH", `${ADMIN}/users/nope`, { is_active: false }, { token: admin.access_token })).status).toBe(404);
  });
});

describe("no staff change leaves no active staff account", () => {
  /** Two new staff accounts, the only active ones: the rule counts every account in the database this file's tests share. */
  async function onlyTwoStaff() {
    await env.DB.prepare("UPDATE users SET is_staff = 0 WHERE is_staff = 1").run();
    return [await staffUser(), await staffUser()] as const;
  }

  async function activeStaff() {
    const { results } = await env.DB.prepare("SELECT id FROM users WHERE is_staff = 1 AND is_active = 1").all<{ id: string }>();
    return results.map((r) => r.id);
  }

  for (const change of [{ is_staff: false }, { is_active: false }]) {
    it(`refuses with 409 last_staff the second of two staff making each other ${JSON.stringify(change)}: one stays staff`, async () => {
      const [a, b] = await onlyTwoStaff();
      // b's request lands after a's request read both accounts as active staff, before its write.
      const probe = probeD1(env.DB);
      let raced = false;
      probe.beforeBatch(async (statements) => {
        if (raced || !statements.some((sql) => sql.startsWith('insert into "admin_audit"'))) return;
        raced = true;
        const first = await h.call("PATCH", `${ADMIN}/users/${a.id}`, change, { token: b.access_token });
        expect(first.status, first.text).toBe(200);
      });
      const second = await h.call("PATCH", `${ADMIN}/users/${b.id}`, change, { token: a.access_token, env: { ...env, DB: probe.db } });
      expect(raced, "b's change ran before a's write").toBe(true);
      expect(second.status, second.text).toBe(409);
      expect(second.json.code).toBe("last_staff");
      expect(await activeStaff()).toEqual([b.id]);
      expect(await auditFor(b.id)).toEqual([]);
      expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: b.refresh_token })).status).toBe(200);
    });
  }

  it("lets one of two staff demoting each other at the same moment through, never both", async () => {
    const [a, b] = await onlyTwoStaff();
    const results = await Promise.all([
      h.call("PATCH", `${ADMIN}/users/${b.id}`, { is_staff: false }, { token: a.access_token }),
      h.call("PATCH", `${ADMIN}/users/${a.id}`, { is_staff: false }, { token: b.access_token }),
    ]);
    const statuses = results.map((r) => r.status).sort();
    // The loser is refused by the rule (409), or, when the winner committed before it was even
    // authenticated, as no longer staff (403).
    expect(statuses[0], results.map((r) => r.text).join("\n")).toBe(200);
    expect([403, 409]).toContain(statuses[1]);
    expect(await activeStaff()).toHaveLength(1);
  });

  it("refuses with 409 last_staff the only active staff account deleting itself; another staff member may", async () => {
    const [a, b] = await onlyTwoStaff();
    expect((await h.call("DELETE", "/api/v1/me", { current_password: a.password }, { token: a.access_token })).status).toBe(204);
    const last = await h.call("DELETE", "/api/v1/me", { current_password: b.password }, { token: b.access_token });
    expect(last.status, last.text).toBe(409);
    expect(last.json.code).toBe("last_staff");
    expect(await activeStaff()).toEqual([b.id]);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: b.refresh_token })).status).toBe(200);
  });

  it("refuses the deletion of a staff account whose only other staff was demoted while it was under way (409 last_staff)", async () => {
    const [a, b] = await onlyTwoStaff();
    const probe = probeD1(env.DB);
    // a demotes b after b's deletion checked b's password, before its batch.
    const staged = probe.onceBefore(/^delete from "profiles"/, async () => {
      expect((await h.call("PATCH", `${ADMIN}/users/${b.id}`, { is_staff: false }, { token: a.access_token })).status).toBe(200);
    });
    const res = await h.call(
      "DELETE",
      "/api/v1/me",
      { current_password: a.password },
      { token: a.access_token, env: { ...env, DB: probe.db } },
    );
    expect(staged.done).toBe(true);
    expect(res.status, res.text).toBe(409);
    expect(res.json.code).toBe("last_staff");
    expect(await activeStaff()).toEqual([a.id]);
  });
});

describe("a flag change is judged by the state it lands on", () => {
  it("marking an address verified while its registrant confirms it with their own code keeps the registrant's password (409)", async () => {
    const staff = await staffUser();
    const email = `${unique("registrant")}@example.com`;
    const password = "registrants-own-secret-41";
    const cap = capturingEnv();
    const reg = await h.call("POST", "/api/v1/auth/register", { email, password }, { env: cap.env });
    expect(reg.status, reg.text).toBe(201);
    const code = cap.sent.find((m) => m.purpose === "verify_email")?.code;
    const probe = probeD1(env.DB);
    let session: { refresh_token: string } | undefined;
    const staged = probe.onceBefore(/^insert into "admin_audit"/, async () => {
      expect((await h.call("POST", "/api/v1/auth/verify-email", { email, code, password })).status).toBe(200);
      session = await h.login(email, password);
    });
    const marked = await h.call(
      "PATCH",
      `${ADMIN}/users/${reg.json.user.id}`,
      { email_verified: true },
      {
        token: staff.access_token,
        env: { ...env, DB: probe.db },
      },
    );
    expect(staged.done).toBe(true);
    expect(marked.status, marked.text).toBe(409);
    expect(marked.json.code).toBe("conflict");
    expect((await h.call("POST", "/api/v1/auth/login", { email, password })).status).toBe(200);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: session?.refresh_token })).status).toBe(200);
    expect(await auditFor(reg.json.user.id)).toEqual([]);
  });

  it("an account deleted while a change to it was under way is a 404, as it would be a moment later", async () => {
    const staff = await staffUser();
    const target = await h.signedInUser();
    const probe = probeD1(env.DB);
    const staged = probe.onceBefore(/^insert into "admin_audit"/, async () => {
      const gone = await h.call("DELETE", "/api/v1/me", { current_password: target.password }, { token: target.access_token });
      expect(gone.status).toBe(204);
    });
    const res = await h.call(
      "PATCH",
      `${ADMIN}/users/${target.id}`,
      { is_active: false },
      { token: staff.access_token, env: { ...env, DB: probe.db } },
    );
    expect(staged.done).toBe(true);
    expect(res.status, res.text).toBe(404);
    expect(await auditFor(target.id)).toEqual([]);
  });

  it("a staff member demoted while their change was under way changes nothing (403)", async () => {
    const [actor, other] = [await staffUser(), await staffUser()];
    const accomplice = await h.registerVerified();
    const probe = probeD1(env.DB);
    const staged = probe.onceBefore(/^insert into "admin_audit"/, async () => {
      expect((await h.call("PATCH", `${ADMIN}/users/${actor.id}`, { is_staff: false }, { token: other.access_token })).status).toBe(200);
    });
    const res = await h.call(
      "PATCH",
      `${ADMIN}/users/${accomplice.id}`,
      { is_staff: true },
      {
        token: actor.access_token,
        env: { ...env, DB: probe.db },
      },
    );
    expect(staged.done).toBe(true);
    expect(res.status, res.text).toBe(403);
    expect((await env.DB.prepare("SELECT is_staff FROM users WHERE id = ?").bind(accomplice.id).first())?.is_staff).toBe(0);
    expect(await auditFor(accomplice.id)).toEqual([]);
  });

  it("a staff member demoted while a config change or a logout-all of theirs was under way changes nothing (403)", async () => {
    const [actor, other] = [await staffUser(), await staffUser()];
    const victim = await h.signedInUser();
    const probe = probeD1(env.DB);
    const requests = [
      () =>
        h.call(
          "PATCH",
          `${ADMIN}/config`,
          { require_email_verification: false },
          { token: actor.access_token, env: { ...env, DB: probe.db } },
        ),
      () => h.call("DELETE", `${ADMIN}/config/otp_ttl`, undefined, { token: actor.access_token, env: { ...env, DB: probe.db } }),
      () =>
        h.call("POST", `${ADMIN}/users/${victim.id}/logout-all`, undefined, { token: actor.access_token, env: { ...env, DB: probe.db } }),
    ];
    await setConfig("otp_ttl", "900");
    for (const request of requests) {
      await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(actor.id).run();
      const staged = probe.onceBefore(/^insert into "admin_audit"/, async () => {
        expect((await h.call("PATCH", `${ADMIN}/users/${actor.id}`, { is_staff: false }, { token: other.access_token })).status).toBe(200);
      });
      const res = await request();
      expect(staged.done).toBe(true);
      expect(res.status, res.text).toBe(403);
    }
    expect(await env.CONFIG.get("require_email_verification")).toBeNull();
    expect(await env.CONFIG.get("otp_ttl")).toBe("900");
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: victim.refresh_token })).status).toBe(200);
    const byActor = await env.DB.prepare("SELECT action FROM admin_audit WHERE actor_id = ? AND action <> 'user.update'")
      .bind(actor.id)
      .all();
    expect(byActor.results).toEqual([]);
  });
});

describe("POST /admin/users/{id}/logout-all", () => {
  it("answers 404 for an account deleted while the request was under way, writing nothing", async () => {
    const admin = await staffUser();
    const target = await h.signedInUser();
    const probe = probeD1(env.DB);
    const staged = probe.onceBefore(/insert into "admin_audit"/, async () => {
      expect((await h.call("DELETE", "/api/v1/me", { current_password: target.password }, { token: target.access_token })).status).toBe(
        204,
      );
    });
    const res = await h.call("POST", `${ADMIN}/users/${target.id}/logout-all`, undefined, {
      token: admin.access_token,
      env: { ...env, DB: probe.db },
    });
    expect(staged.done).toBe(true);
    expect(res.status, res.text).toBe(404);
    expect(await auditFor(target.id)).toEqual([]);
  });

  it("ends every session of the user, answers 204 and is audited", async () => {
    const admin = await staffUser();
    const victim = await h.signedInUser();
    h.clock.advance(1000);
    const res = await h.call("POST", `${ADMIN}/users/${victim.id}/logout-all`, undefined, { token: admin.access_token });
    expect(res.status).toBe(204);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: victim.access_token })).status).toBe(401);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: victim.refresh_token })).status).toBe(401);
    expect(await auditFor(victim.id)).toMatchObject([{ actor_id: admin.id, action: "user.logout_all" }]);
    // The account itself still works: a new sign-in succeeds.
    expect((await h.call("POST", "/api/v1/auth/login", { email: victim.email, password: victim.password })).status).toBe(200);
    expect((await h.call("POST", `${ADMIN}/users/nope/logout-all`, undefined, { token: admin.access_token })).status).toBe(404);
  });
});
