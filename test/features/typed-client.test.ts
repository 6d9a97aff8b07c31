import { env } from "cloudflare:test";
import { hc } from "hono/client";
import { describe, expect, it } from "vitest";
import type { AppType } from "../../src/app";
import { BASE, harness, unique } from "../helpers";

describe("typed client (hc<AppType>)", () => {
  const h = harness();
  const client = hc<AppType>(BASE, {
    fetch: (input: RequestInfo | URL, init?: RequestInit) => h.app.fetch(new Request(input, init), env),
  });

  it("drives register → login → /me → refresh → logout through the exported AppType", async () => {
    const email = `${unique("typed")}@example.com`;
    const password = "Tr0ub4dor&3-horse";
    const username = unique("t");

    const registered = await client.api.v1.auth.register.$post({ json: { email, password, username } });
    expect(registered.status).toBe(201);
    if (registered.status !== 201) throw new Error("register failed");
    const { user } = await registered.json();
    expect(user.email).toBe(email);
    await env.DB.prepare("UPDATE users SET email_verified = 1 WHERE id = ?").bind(user.id).run();

    const login = await client.api.v1.auth.login.$post({ json: { username, password } });
    expect(login.status).toBe(200);
    if (login.status !== 200) throw new Error("login failed");
    const tokens = await login.json();
    expect(tokens.token_type).toBe("Bearer");

    const me = await client.api.v1.me.$get({}, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(me.status).toBe(200);
    if (me.status !== 200) throw new Error("me failed");
    const body = await me.json();
    expect(body.user).toMatchObject({ id: user.id, email, username, is_staff: false, pending_email: null });

    const refreshed = await client.api.v1.auth.refresh.$post({ json: { refresh_token: tokens.refresh_token } });
    expect(refreshed.status).toBe(200);
    if (refreshed.status !== 200) throw new Error("refresh failed");
    const next = await refreshed.json();

    const logout = await client.api.v1.auth.logout.$post({ json: { refresh_token: next.refresh_token } });
    expect(logout.status).toBe(204);
  });

  it("types error responses as problem documents", async () => {
    const res = await client.api.v1.auth.login.$post({ json: { email: `${unique("nobody")}@example.com`, password: "whatever-password" } });
    expect(res.status).toBe(401);
    if (res.status !== 401) throw new Error("expected 401");
    const problem = await res.json();
    expect(problem.code).toBe("invalid_credentials");
    expect(problem.status).toBe(401);
  });
});
