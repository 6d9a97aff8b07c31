import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { API_BASE } from "../../src/app";
import { escapeHtml } from "../../src/features/mail/mail.templates";
import { ERRORS } from "../../src/lib/errors";
import { harness } from "../helpers";

/** The foundation's own routes; features add more, and every one must be documented too. */
const FOUNDATION_ROUTES = [
  ["post", "/api/v1/auth/register"],
  ["post", "/api/v1/auth/login"],
  ["post", "/api/v1/auth/refresh"],
  ["post", "/api/v1/auth/logout"],
  ["post", "/api/v1/auth/logout-all"],
  ["get", "/api/v1/me"],
  ["put", "/api/v1/me"],
  ["patch", "/api/v1/me"],
  ["delete", "/api/v1/me"],
  ["post", "/api/v1/me/password"],
] as const;

afterEach(() => vi.restoreAllMocks());

type Operation = { responses: Record<string, { content?: Record<string, unknown> }>; security?: unknown[] };

describe("GET /health", () => {
  const h = harness();

  it("answers 200 {status: ok}", async () => {
    const res = await h.call("GET", "/health");
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ status: "ok" });
  });
});

describe("GET /.well-known/jwks.json", () => {
  const h = harness();

  it("lists the public half of every signing key, and tokens name one of them", async () => {
    const res = await h.call("GET", "/.well-known/jwks.json");
    expect(res.status).toBe(200);
    const configured = JSON.parse(env.JWT_KEYS).keys as { kid: string; x: string; d: string }[];
    expect(res.json.keys.map((k: { kid: string }) => k.kid)).toEqual(configured.map((k) => k.kid));
    for (const [i, key] of res.json.keys.entries()) {
      expect(key).toEqual({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig", kid: configured[i]?.kid, x: configured[i]?.x });
      expect(res.text).not.toContain(configured[i]?.d);
    }
    const u = await h.signedInUser();
    const kid = JSON.parse(atob(u.access_token.split(".")[0]?.replace(/-/g, "+").replace(/_/g, "/") ?? "")).kid;
    expect(res.json.keys.map((k: { kid: string }) => k.kid)).toContain(kid);
  });
});

describe("GET /openapi.json", () => {
  const h = harness();

  it("is an OpenAPI 3.1 document listing every foundation route with its error responses", async () => {
    const res = await h.call("GET", "/openapi.json");
    expect(res.status).toBe(200);
    const doc = res.json;
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(doc.info.title).toBe("Latchkey");
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
    for (const [method, path] of FOUNDATION_ROUTES) {
      const op = doc.paths[path]?.[method] as Operation | undefined;
      expect(op, `${method} ${path}`).toBeDefined();
      const statuses = Object.keys(op?.responses ?? {});
      expect(
        statuses.some((s) => s.startsWith("2")),
        `${method} ${path} success`,
      ).toBe(true);
      expect(statuses, `${method} ${path}`).toContain("500");
      expect(statuses.filter((s) => s.startsWith("4")).length, `${method} ${path} 4xx`).toBeGreaterThan(0);
    }
    // Spot checks of the statuses each route can really answer.
    expect(Object.keys(doc.paths["/api/v1/auth/register"].post.responses)).toEqual(
      expect.arrayContaining(["201", "400", "409", "413", "415", "429"]),
    );
    expect(Object.keys(doc.paths["/api/v1/auth/login"].post.responses)).toEqual(
      expect.arrayContaining(["200", "400", "401", "403", "429"]),
    );
    expect(Object.keys(doc.paths["/api/v1/auth/refresh"].post.responses)).toEqual(expect.arrayContaining(["200", "400", "401"]));
    expect(doc.paths["/api/v1/me"].get.security).toEqual([{ bearerAuth: [] }]);
  });

  it("documents every /api/v1 route the app serves, each error as a problem document", async () => {
    const doc = (await h.call("GET", "/openapi.json")).json;
    const served = new Set(
      h.app.routes
        .filter((r) => r.method !== "ALL" && r.path.startsWith(`${API_BASE}/`))
        .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)(\{[^}]*\})?/g, "{$1}")}`),
    );
    expect(served.size).toBeGreaterThanOrEqual(FOUNDATION_ROUTES.length);
    for (const route of served) {
      const [method, path] = route.split(" ") as [string, string];
      const op = doc.paths[path]?.[method] as Operation | undefined;
      expect(op, `${route} is missing from /openapi.json`).toBeDefined();
      for (const [status, response] of Object.entries(op?.responses ?? {})) {
        if (Number(status) >= 400) {
          expect(Object.keys(response.content ?? {}), `${route} ${status}`).toEqual(["application/problem+json"]);
        }
      }
    }
    const problem = doc.components.schemas.Problem;
    expect(problem.required).toEqual(expect.arrayContaining(["type", "title", "status", "detail", "code"]));
  });

  it("declares the status and content type of what every read answers, set up or not", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const doc = (await h.call("GET", "/openapi.json")).json as { paths: Record<string, { get?: Operation }> };
    const { OTP_SECRET: _, ...notSetUp } = env;
    const undeclared: string[] = [];
    for (const [template, item] of Object.entries(doc.paths)) {
      if (!item.get) continue;
      // Unauthenticated, with made-up ids: the answers a client meets first (2xx, 400, 401, 404, 503).
      const path = template.replace(/\{[^}]+\}/g, "x");
      for (const [setup, bindings] of [
        ["set up", env],
        ["not set up", notSetUp as Env],
      ] as const) {
        const res = await h.call("GET", path, undefined, { env: bindings });
        const type = res.headers.get("content-type")?.split(";")[0] ?? null;
        const declared = item.get.responses[String(res.status)];
        const types = Object.keys(declared?.content ?? {});
        if (!declared || (type === null ? types.length > 0 : !types.includes(type))) {
          undeclared.push(
            `GET ${template} (${setup}): ${res.status} ${type} (declared: ${declared ? types.join(", ") || "no body" : "not this status"})`,
          );
        }
      }
    }
    expect(undeclared).toEqual([]);
  });

  it("documents on each operation the answers its declaration implies, and the rate limits it counts", async () => {
    const doc = (await h.call("GET", "/openapi.json")).json;
    const missing: string[] = [];
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, OperationDetail>>)) {
      if (!path.startsWith(`${API_BASE}/`)) continue;
      for (const [method, op] of Object.entries(item)) {
        const has = (status: string) => status in (op.responses ?? {}) || missing.push(`${method} ${path}: ${status}`);
        // Path and query parameters are validated (length, shape): 400.
        if ((op.parameters ?? []).length > 0) has("400");
        if (op.requestBody?.content?.["application/json"]) for (const status of ["400", "413", "415"]) has(status);
        if (op.security?.some((scheme) => "bearerAuth" in scheme)) has("401");
        // The headers those answers always carry (RFC 9110 §15.5.2, RFC 6585 §4).
        const headers = (status: string) => Object.keys((op.responses?.[status] as { headers?: object } | undefined)?.headers ?? {});
        if ("401" in (op.responses ?? {}) && !headers("401").includes("WWW-Authenticate")) missing.push(`${method} ${path}: 401 header`);
        if ("429" in (op.responses ?? {}) && !headers("429").includes("Retry-After")) missing.push(`${method} ${path}: 429 header`);
        // A 201 names what it created (RFC 9110 §15.3.2).
        if ("201" in (op.responses ?? {}) && !headers("201").includes("Location")) missing.push(`${method} ${path}: 201 header`);
      }
    }
    // Operations that count a rate limit (README, Rate limits): each can answer 429.
    for (const [method, path] of [
      ["patch", "/me/profile"],
      ["put", "/me/profile"],
      ["put", "/me/avatar"],
      ["delete", "/me/avatar"],
      ["post", "/auth/login/otp"],
      ["post", "/auth/password/reset"],
      ["post", "/me/email/verify"],
    ] as const) {
      if (!("429" in (doc.paths[`${API_BASE}${path}`]?.[method]?.responses ?? {}))) missing.push(`${method} ${path}: 429`);
    }
    expect(missing).toEqual([]);
  });
});

interface OperationDetail {
  parameters?: unknown[];
  requestBody?: { content?: Record<string, unknown> };
  security?: Record<string, unknown>[];
  responses?: Record<string, unknown>;
}

describe("GET /docs", () => {
  const h = harness();

  it("serves an HTML reference page whose scripts and styles all come from this origin", async () => {
    const res = await h.call("GET", "/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.text).not.toMatch(/https?:\/\//);
    expect(res.text).not.toMatch(/src=["']\/\//);
    const refs = [...res.text.matchAll(/<(?:script|link)\b[^>]*(?:src|href)=["']([^"']+)["']/g)].map((m) => m[1] as string);
    expect(refs.length).toBeGreaterThanOrEqual(2);
    for (const ref of refs) expect(ref, ref).toMatch(/^\/[^/]/);

    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/form-action 'none'/);
    expect(csp).not.toMatch(/https?:|\*/);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("points the page at the worker's own OpenAPI document, and its assets exist", async () => {
    const res = await h.call("GET", "/docs");
    const refs = [...res.text.matchAll(/(?:src|href)=["'](\/[^"']+)["']/g)].map((m) => m[1] as string);
    for (const ref of refs) {
      const asset = await env.ASSETS.fetch(`http://latchkey.test${ref}`);
      expect(asset.status, ref).toBe(200);
      const text = await asset.text();
      if (ref.endsWith("init.js")) {
        expect(text).toContain('"/openapi.json"');
        expect(text).not.toMatch(/https?:\/\//);
      }
    }
  });
});

describe("GET /", () => {
  const h = harness();

  it("is an HTML index pointing at the docs and the OpenAPI document, not a JSON 404", async () => {
    const res = await h.call("GET", "/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const links = [...res.text.matchAll(/<a href="([^"]+)"/g)].map((m) => m[1]);
    expect(links).toEqual(expect.arrayContaining(["/docs", "/openapi.json"]));
    // Every link is a route of this worker that answers 200: no placeholder, nothing external.
    for (const link of links) expect((await h.call("GET", link as string)).status, link).toBe(200);
    expect(res.text).not.toMatch(/https?:\/\//);
  });

  it("has its own CSP that allows nothing external and no script or style, as the problem type pages do", async () => {
    for (const path of ["/", "/problems", "/problems/rate-limited"]) {
      const res = await h.call("GET", path);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp, path).toMatch(/default-src 'none'/);
      expect(csp, path).not.toMatch(/script-src|style-src|https?:|\*/);
      expect(res.text, path).not.toMatch(/<script|<style|style=|https?:\/\//);
      expect(res.headers.get("x-content-type-options"), path).toBe("nosniff");
    }
  });
});

describe("GET /problems/{code}", () => {
  const h = harness();

  it("documents every problem type a client can meet: the type URI of a problem leads to a page on this origin", async () => {
    const problem = await h.call("GET", "/api/v1/nowhere");
    expect(problem.json.type).toBe("/problems/not-found");
    // Relative, so it resolves against the request's URL (RFC 9457 §3.1.1): this deployment, whatever its host.
    const url = new URL(problem.json.type, "https://accounts.example/api/v1/nowhere");
    expect(url.href).toBe("https://accounts.example/problems/not-found");
    const page = await h.call("GET", url.pathname);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
  });

  it("gives each code's status, title and what a client should do, from the one error table", async () => {
    const index = await h.call("GET", "/problems");
    expect(index.status).toBe(200);
    for (const [code, spec] of Object.entries(ERRORS)) {
      const path = `/problems/${code.replace(/_/g, "-")}`;
      expect(index.text, code).toContain(`href="${path}"`);
      const res = await h.call("GET", path);
      expect(res.status, code).toBe(200);
      expect(res.text).toContain(`<code>${code}</code>`);
      expect(res.text).toContain(String(spec.status));
      expect(res.text).toContain(escapeHtml(spec.title));
      // The advice, its `backticked` names set as code.
      expect(spec.advice.length, code).toBeGreaterThan(20);
      expect(res.text.replace(/<\/?code>/g, "`")).toContain(escapeHtml(spec.advice));
    }
  });

  it("answers an unknown code, another spelling or an inherited name with a 404 problem", async () => {
    for (const path of [
      "/problems/no-such-problem",
      "/problems/not_found",
      "/problems/NOT-FOUND",
      "/problems/constructor",
      "/problems/to-string",
    ]) {
      const res = await h.call("GET", path);
      expect(res.status, path).toBe(404);
      expect(res.headers.get("content-type"), path).toBe("application/problem+json");
      expect(res.json.code, path).toBe("not_found");
    }
  });

  it("works before the service is set up: documentation needs no secret", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const { JWT_KEYS: _, ...notSetUp } = env;
    const problem = await h.call("GET", "/api/v1/statuses", undefined, { env: notSetUp as Env });
    expect(problem.status).toBe(503);
    expect((await h.call("GET", problem.json.type, undefined, { env: notSetUp as Env })).status).toBe(200);
  });
});

describe("favicon", () => {
  const h = harness();

  it("is linked from the index and the docs page and served from this origin's assets", async () => {
    for (const page of ["/", "/docs"]) {
      const res = await h.call("GET", page);
      expect(res.text, page).toContain('<link rel="icon" href="/favicon.svg" type="image/svg+xml">');
      expect(res.headers.get("content-security-policy"), page).toMatch(/img-src 'self'/);
    }
    const icon = await env.ASSETS.fetch("http://latchkey.test/favicon.svg");
    expect(icon.status).toBe(200);
    const svg = await icon.text();
    expect(svg).toMatch(/^<svg /);
    expect(svg).not.toMatch(/<script|href=|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  });
});
