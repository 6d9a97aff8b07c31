/**
 * The worker on libSQL, end to end: the real dev server with `LIBSQL_URL` set, so its stores run
 * through `@libsql/client/web` and Drizzle's libsql driver inside workerd, against a libSQL
 * database served over HTTP. No libSQL server installs here, so the HTTP side is the Hrana shim
 * in test/e2e/hrana-shim.ts (see its header); the database engine behind it is libSQL's own.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueId } from "../ids";
import { type DevServer, postJson, signedInUser, startDevServer } from "./dev-server";
import { type HranaShim, startHranaShim } from "./hrana-shim";

describe("the worker on libSQL", () => {
  let dir: string;
  let shim: HranaShim;
  let server: DevServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "latchkey-libsql-e2e-"));
    shim = await startHranaShim(join(dir, "latchkey.db"));
    // The same migrations/ files D1 gets, applied in name order (the breakpoint lines are comments).
    for (const file of readdirSync("migrations")
      .filter((f) => f.endsWith(".sql"))
      .sort()) {
      shim.db.exec(readFileSync(join("migrations", file), "utf8"));
    }
    server = await startDevServer({ args: ["--var", `LIBSQL_URL:${shim.url}`, "--var", "LIBSQL_AUTH_TOKEN:unused-by-the-shim"] });
  });

  afterAll(async () => {
    await server?.stop();
    await shim?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const count = (sql: string, ...params: unknown[]) => (shim.db.prepare(sql).get(...params) as { n: number }).n;

  it("registers, verifies, signs in, reads /me and rotates (one winner among concurrent rotations), all stored in libSQL", async () => {
    const password = "Tr0ub4dor&3-horse";
    const email = `libsql-${uniqueId(password)}@example.com`;
    const { accessToken, refreshToken } = await signedInUser(server, email, password);
    expect(count("SELECT COUNT(*) AS n FROM users WHERE email = ? AND email_verified = 1", email)).toBe(1);
    expect(count("SELECT COUNT(*) AS n FROM profiles p JOIN users u ON u.id = p.user_id WHERE u.email = ?", email)).toBe(1);

    const me = await fetch(`${server.url}/api/v1/me`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { user: { email: string } }).user.email).toBe(email);
    // No D1 session under libSQL, so no bookmark.
    expect(me.headers.get("x-latchkey-bookmark")).toBeNull();

    const rotated = await postJson(server, "/api/v1/auth/refresh", { refresh_token: refreshToken });
    expect(rotated.status).toBe(200);
    expect(count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE revoked_reason = 'rotated'")).toBeGreaterThanOrEqual(1);

    // The same email again: 409, and still one account.
    const again = await postJson(server, "/api/v1/auth/register", { email, password });
    expect(again.status).toBe(409);
    expect(count("SELECT COUNT(*) AS n FROM users WHERE email = ?", email)).toBe(1);

    // Concurrent rotations of one token: exactly one wins.
    const next = String(rotated.json?.refresh_token);
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        postJson(server, "/api/v1/auth/refresh", { refresh_token: next }, { "cf-connecting-ip": "203.0.113.9" }),
      ),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
  });

  it("answers 503 with Retry-After while the libSQL server fails or is gone, and serves again once it is back", async () => {
    const password = "Tr0ub4dor&3-horse";
    const { accessToken } = await signedInUser(server, `libsql-${uniqueId(password)}@example.com`, password);
    const me = () => fetch(`${server.url}/api/v1/me`, { headers: { authorization: `Bearer ${accessToken}` } });
    try {
      for (const state of ["failing", "refusing"] as const) {
        await shim.setState(state);
        const res = await me();
        const body = (await res.json()) as { code: string };
        expect({ state, status: res.status, code: body.code }).toEqual({ state, status: 503, code: "database_unavailable" });
        expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      }
    } finally {
      await shim.setState("serving");
    }
    expect((await me()).status).toBe(200);
  });
});
