/**
 * D1 read replication: each request runs in one D1 session that starts where the route's rule says
 * (src/store/replica.ts), answers with its bookmark, and starts at a bookmark the client sends back
 * — so a client reads its own writes even on replica-tolerant routes. Bad bookmarks are ignored.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BOOKMARK_HEADER, NoSession, parseBookmark, REPLICA_TOLERANT_ROUTES, sessionStartFor } from "../../src/store";
import { harness } from "../helpers";

const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;

/** The real binding, recording what each request's session started with. */
function recordingEnv() {
  const starts: (string | undefined)[] = [];
  const DB = new Proxy(env.DB, {
    get(target, property) {
      if (property === "withSession") {
        return (arg?: string) => {
          starts.push(arg);
          return target.withSession(arg);
        };
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { starts, env: { ...env, DB } };
}

describe("read replication", () => {
  const h = harness();

  it("starts read-only, replica-tolerant routes unconstrained and everything else at the primary", () => {
    for (const path of [
      "/api/v1/profiles",
      "/api/v1/profiles/abc",
      "/api/v1/statuses",
      "/api/v1/statuses/xyz",
      "/api/v1/me",
      "/api/v1/me/activity",
      "/api/v1/me/sessions",
    ]) {
      expect(sessionStartFor("GET", path), path).toBe("first-unconstrained");
    }
    // Everything the account holds goes only to a session the primary says is live.
    expect(sessionStartFor("GET", "/api/v1/me/export")).toBe("first-primary");
    expect(sessionStartFor("POST", "/api/v1/statuses")).toBe("first-primary");
    expect(sessionStartFor("PATCH", "/api/v1/me")).toBe("first-primary");
    expect(sessionStartFor("GET", "/api/v1/admin/users")).toBe("first-primary");
    expect(sessionStartFor("GET", "/api/v1/admin/audit")).toBe("first-primary");
    expect(sessionStartFor("GET", "/api/v1/profiles/abc/avatar/extra")).toBe("first-primary");
    // Its answer goes to the edge cache: a stale replica would re-cache what a purge removed.
    expect(sessionStartFor("GET", "/api/v1/profiles/abc/avatar")).toBe("first-primary");
  });

  it("names only routes that exist, as GET operations of the API", async () => {
    const doc = (await h.call("GET", "/openapi.json")).json as { paths: Record<string, Record<string, unknown>> };
    for (const route of REPLICA_TOLERANT_ROUTES) expect(doc.paths[`/api/v1${route}`]?.get, route).toBeTruthy();
  });

  it("opens one session per request with the route's start, or the client's bookmark", async () => {
    const u = await h.signedInUser();
    const rec = recordingEnv();
    await h.call("GET", "/api/v1/statuses", undefined, { env: rec.env });
    await h.call("POST", "/api/v1/auth/refresh", { refresh_token: u.refresh_token }, { env: rec.env });
    const written = await h.call("PATCH", "/api/v1/me/profile", { name: "Ada" }, { token: u.access_token, env: rec.env });
    const bookmark = written.headers.get(BOOKMARK_HEADER) ?? "";
    await h.call("GET", "/api/v1/me", undefined, { token: u.access_token, env: rec.env, headers: { [BOOKMARK_HEADER]: bookmark } });
    expect(rec.starts).toEqual(["first-unconstrained", "first-primary", "first-primary", bookmark]);
  });

  it("starts a route that reads the primary there whatever bookmark the client sends, an old one included", async () => {
    const u = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(u.id).run();
    const old = (await h.call("GET", "/api/v1/statuses")).headers.get(BOOKMARK_HEADER) ?? "";
    expect(old).toMatch(BOOKMARK);
    const rec = recordingEnv();
    const headers = { [BOOKMARK_HEADER]: old };
    await h.call("GET", "/api/v1/admin/users", undefined, { token: u.access_token, env: rec.env, headers });
    await h.call("PATCH", "/api/v1/me/profile", { name: "Ada" }, { token: u.access_token, env: rec.env, headers });
    await h.call("GET", "/api/v1/me/export", undefined, { token: u.access_token, env: rec.env, headers });
    await h.call("GET", `/api/v1/profiles/${u.id}/avatar?v=x`, undefined, { env: rec.env, headers });
    expect(rec.starts).toEqual(["first-primary", "first-primary", "first-primary", "first-primary"]);
  });

  it("lets a client read its own write by sending the bookmark back", async () => {
    const u = await h.signedInUser();
    const write = await h.call("PATCH", "/api/v1/me/profile", { profession: "engineer" }, { token: u.access_token });
    expect(write.status).toBe(200);
    const bookmark = write.headers.get(BOOKMARK_HEADER);
    expect(bookmark).toMatch(BOOKMARK);

    const read = await h.call("GET", "/api/v1/me", undefined, { token: u.access_token, headers: { [BOOKMARK_HEADER]: bookmark ?? "" } });
    expect(read.status).toBe(200);
    expect(read.json.user.profile.profession).toBe("engineer");
    // The read's own bookmark is at least as new as the one it started from.
    expect((read.headers.get(BOOKMARK_HEADER) ?? "") >= (bookmark ?? "")).toBe(true);
  });

  it("ignores invalid bookmarks instead of failing the request", async () => {
    const u = await h.signedInUser();
    const rec = recordingEnv();
    for (const bad of [
      "garbage",
      "",
      "00000000-00000000-00000000",
      "x".repeat(5000),
      "00000000-0000000G-00000000-00000000000000000000000000000000",
    ]) {
      const res = await h.call("GET", "/api/v1/me", undefined, {
        token: u.access_token,
        env: rec.env,
        headers: { [BOOKMARK_HEADER]: bad },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get(BOOKMARK_HEADER)).toMatch(BOOKMARK);
    }
    expect(new Set(rec.starts)).toEqual(new Set(["first-unconstrained"]));
    expect(parseBookmark("garbage")).toBeNull();
  });

  it("sends a bookmark with error responses too, and none when there is no D1 session", async () => {
    const res = await h.call("GET", "/api/v1/statuses/does-not-exist");
    expect(res.status).toBe(404);
    expect(res.headers.get(BOOKMARK_HEADER)).toMatch(BOOKMARK);
    expect(NoSession({} as never).bookmark()).toBeNull();
  });
});
