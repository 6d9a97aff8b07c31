import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createLatchkeyClient } from "../../client/index.js";
import { BASE, harness, unique } from "../helpers";

/**
 * The published client (client/: openapi-fetch typed with the types generated from
 * /openapi.json) against the real app: what its types promise is what the worker answers.
 */
describe("latchkey-client (generated from /openapi.json)", () => {
  const h = harness();
  const api = createLatchkeyClient({ baseUrl: BASE, fetch: async (request: Request) => h.app.fetch(request, env) });

  it("signs in, reads statuses and refreshes with the typed client", async () => {
    const u = await h.registerVerified();
    const login = await api.POST("/api/v1/auth/login", {
      body: { email: u.email, password: u.password },
      headers: { "cf-connecting-ip": "203.0.113.90" },
    });
    expect(login.error).toBeUndefined();
    expect(login.data?.token_type).toBe("Bearer");
    const tokens = login.data;
    if (!tokens) throw new Error("login failed");

    const posted = await api.POST("/api/v1/statuses", {
      body: { content: `hello ${unique()}` },
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    expect(posted.response.status).toBe(201);
    const list = await api.GET("/api/v1/statuses", { params: { query: { user_id: u.id, limit: 5 } } });
    expect(list.data?.items.map((s) => s.content)).toEqual([posted.data?.status.content]);

    const refreshed = await api.POST("/api/v1/auth/refresh", { body: { refresh_token: tokens.refresh_token } });
    expect(refreshed.data?.refresh_token).not.toBe(tokens.refresh_token);
  });

  it("types an error as a problem document", async () => {
    const { data, error, response } = await api.POST("/api/v1/auth/login", {
      body: { email: `${unique("nobody")}@example.com`, password: "whatever-password" },
    });
    expect(data).toBeUndefined();
    expect(response.status).toBe(401);
    expect(error?.code).toBe("invalid_credentials");
    expect(error?.status).toBe(401);
  });
});
