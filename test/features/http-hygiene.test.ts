import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { probeD1 } from "../d1-wrap";
import { harness, unique } from "../helpers";

const LOGIN = "/api/v1/auth/login";
const REGISTER = "/api/v1/auth/register";
const KIB = 1024;

type Result = Awaited<ReturnType<ReturnType<typeof harness>["call"]>>;

/** For an answer over plain http, as the harness sends by default: so no HSTS (see "HSTS" below). */
function expectSecurityHeaders(res: Result) {
  expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  expect(res.headers.get("strict-transport-security")).toBeNull();
  expect(res.headers.get("referrer-policy")).toBe("no-referrer");
  expect(res.headers.get("content-security-policy")).toMatch(/default-src 'none'/);
}

/** Every error is an RFC 9457 problem document, with nothing internal in it. */
function expectProblem(res: Result, status: number, code?: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  expect(res.json).toMatchObject({
    type: expect.any(String),
    title: expect.any(String),
    status,
    detail: expect.any(String),
    code: expect.any(String),
  });
  if (code) expect(res.json.code).toBe(code);
  // A relative reference with the full path (RFC 9457 §3.1.1), resolved against the request's URL: this deployment's page on it.
  expect(res.json.type).toBe(`/problems/${res.json.code.replace(/_/g, "-")}`);
  expect(res.text).not.toMatch(/\bat .*\.(ts|js):\d+|stack|Error:/);
  expectSecurityHeaders(res);
}

/** A body streamed in chunks, so the request has no Content-Length. */
function chunkedBody(totalBytes: number, chunkBytes = 8 * KIB) {
  const encoder = new TextEncoder();
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent === 0) {
        controller.enqueue(encoder.encode('{"email":"'));
        sent += 10;
        return;
      }
      if (sent >= totalBytes) {
        controller.enqueue(encoder.encode('@example.com","password":"x"}'));
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode("a".repeat(chunkBytes)));
      sent += chunkBytes;
    },
  });
}

describe("security headers", () => {
  const h = harness();

  it("are on successful responses", async () => {
    const res = await h.call("GET", "/health");
    expect(res.status).toBe(200);
    expectSecurityHeaders(res);
  });

  it("are on error responses too", async () => {
    expectProblem(await h.call("GET", "/api/v1/nowhere"), 404, "not_found");
    expectProblem(await h.call("GET", "/api/v1/me"), 401, "unauthorized");
    expectProblem(await h.call("POST", LOGIN, { password: "x" }), 400, "validation_failed");
    expectProblem(await h.call("POST", LOGIN, undefined, { raw: "x", headers: { "content-type": "text/plain" } }), 415);
  });

  it("send HSTS over https only: never on a plain-http answer (RFC 6797 §7.2), an error's included", async () => {
    for (const path of ["/health", "/api/v1/nowhere", "/"]) {
      const secure = await h.call("GET", path, undefined, { origin: "https://latchkey.test" });
      expect(secure.headers.get("strict-transport-security"), path).toBe("max-age=63072000; includeSubDomains");
      const plain = await h.call("GET", path, undefined, { origin: "http://latchkey.test" });
      expect(plain.headers.get("strict-transport-security"), path).toBeNull();
    }
  });

  it("token responses are never cached", async () => {
    const u = await h.signedInUser();
    const login = await h.call("POST", LOGIN, { email: u.email, password: u.password });
    expect(login.headers.get("cache-control")).toBe("no-store");
    const refresh = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: login.json.refresh_token });
    expect(refresh.status).toBe(200);
    expect(refresh.headers.get("cache-control")).toBe("no-store");
  });

  it("no answer to a signed-in caller may be stored by a cache: their own data and every staff read say no-store", async () => {
    const u = await h.signedInUser();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(u.id).run();
    for (const path of [
      "/api/v1/me",
      "/api/v1/me/profile",
      "/api/v1/me/activity",
      "/api/v1/me/sessions",
      "/api/v1/admin/config",
      "/api/v1/admin/users",
      `/api/v1/admin/users/${u.id}`,
      "/api/v1/admin/audit",
    ]) {
      const res = await h.call("GET", path, undefined, { token: u.access_token });
      expect(res.status, path).toBe(200);
      expect(res.headers.get("cache-control"), path).toBe("no-store");
    }
    // A refusal of a token says the same; the export keeps its own (same) policy.
    expect((await h.call("GET", "/api/v1/me", undefined, { token: `${u.access_token}x` })).headers.get("cache-control")).toBe("no-store");
    expect((await h.call("GET", "/api/v1/me/export", undefined, { token: u.access_token })).headers.get("cache-control")).toBe("no-store");
  });
});

describe("CORS", () => {
  const h = harness();
  const corsEnv = { ...env, CORS_ORIGINS: "https://app.example, https://admin.example" };

  it("reflects a listed origin", async () => {
    const res = await h.call("GET", "/health", undefined, { env: corsEnv, headers: { origin: "https://app.example" } });
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const other = await h.call("GET", "/health", undefined, { env: corsEnv, headers: { origin: "https://admin.example" } });
    expect(other.headers.get("access-control-allow-origin")).toBe("https://admin.example");
  });

  it("says Vary: Origin with and without an Origin header, and sends CORS headers only to a listed origin", async () => {
    const listed = await h.call("GET", "/health", undefined, { env: corsEnv, headers: { origin: "https://app.example" } });
    expect(listed.headers.get("vary")).toContain("Origin");
    expect(listed.headers.get("access-control-expose-headers")).toContain("X-Request-Id");
    // A shared cache must not hand an answer without CORS headers to a cross-origin caller.
    const plain = await h.call("GET", "/health", undefined, { env: corsEnv });
    expect(plain.headers.get("vary")).toContain("Origin");
    expect(plain.headers.get("access-control-allow-origin")).toBeNull();
    expect(plain.headers.get("access-control-expose-headers")).toBeNull();
  });

  it("lets a listed origin's script read Retry-After, WWW-Authenticate and Location (none is CORS-safelisted)", async () => {
    const res = await h.call("GET", "/api/v1/me", undefined, { env: corsEnv, headers: { origin: "https://app.example" } });
    expect(res.status).toBe(401);
    const exposed = (res.headers.get("access-control-expose-headers") ?? "").split(/, */).map((name) => name.toLowerCase());
    expect(exposed).toEqual(expect.arrayContaining(["retry-after", "www-authenticate", "x-request-id", "location"]));
  });

  it("lets a listed origin's script read the export's Content-Disposition, its file name (not CORS-safelisted)", async () => {
    const u = await h.signedInUser();
    const res = await h.call("GET", "/api/v1/me/export", undefined, {
      env: corsEnv,
      token: u.access_token,
      headers: { origin: "https://app.example" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename=/);
    const exposed = (res.headers.get("access-control-expose-headers") ?? "").split(/, */).map((name) => name.toLowerCase());
    expect(exposed).toContain("content-disposition");
  });

  it("answers a preflight from a listed origin", async () => {
    const res = await h.call("OPTIONS", LOGIN, undefined, {
      env: corsEnv,
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
  });

  it("answers OPTIONS with an Origin but no Access-Control-Request-Method as a plain OPTIONS: not a preflight (Fetch §3.2.2), so Allow", async () => {
    const listed = await h.call("OPTIONS", "/api/v1/me", undefined, { env: corsEnv, headers: { origin: "https://app.example" } });
    expect(listed.status).toBe(204);
    expect(listed.headers.get("allow")).toBe("DELETE, GET, HEAD, OPTIONS, PATCH, PUT");
    expect(listed.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(listed.headers.get("access-control-expose-headers")).toContain("X-Request-Id");
    expect(listed.headers.get("access-control-allow-methods")).toBeNull();
    expect(listed.headers.get("vary")).toContain("Origin");
    const unlisted = await h.call("OPTIONS", LOGIN, undefined, { env: corsEnv, headers: { origin: "https://evil.example" } });
    expect(unlisted.status).toBe(204);
    expect(unlisted.headers.get("allow")).toBe("OPTIONS, POST");
    expect(unlisted.headers.get("access-control-allow-origin")).toBeNull();
    expect(unlisted.headers.get("vary")).toContain("Origin");
    const unknown = await h.call("OPTIONS", "/api/v1/nowhere", undefined, { env: corsEnv, headers: { origin: "https://app.example" } });
    expect(unknown.status).toBe(404);
  });

  it("never reflects an unlisted origin, a look-alike or 'null'", async () => {
    for (const origin of ["https://evil.example", "null", "https://app.example.evil.example", "http://app.example", "*"]) {
      const res = await h.call("GET", "/health", undefined, { env: corsEnv, headers: { origin } });
      expect(res.headers.get("access-control-allow-origin"), origin).toBeNull();
      const preflight = await h.call("OPTIONS", LOGIN, undefined, {
        env: corsEnv,
        headers: { origin, "access-control-request-method": "POST" },
      });
      expect(preflight.headers.get("access-control-allow-origin"), origin).toBeNull();
    }
  });

  it("allows no cross-origin access when CORS_ORIGINS is empty", async () => {
    const res = await h.call("GET", "/health", undefined, {
      env: { ...env, CORS_ORIGINS: "" },
      headers: { origin: "https://app.example" },
    });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("request bodies", () => {
  const h = harness();

  it("requires Content-Type: application/json (415 otherwise)", async () => {
    const body = JSON.stringify({ email: "a@example.com", password: "whatever-password" });
    for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"]) {
      const res = await h.call("POST", LOGIN, undefined, { raw: body, headers: { "content-type": type } });
      expectProblem(res, 415, "unsupported_media_type");
    }
    const charset = await h.call("POST", LOGIN, undefined, { raw: body, headers: { "content-type": "application/json; charset=utf-8" } });
    expect(charset.status).toBe(401);
  });

  it("refuses a body with a content coding (RFC 9110 §15.5.16): 415 with Accept-Encoding: identity, not parsed as plain, nothing changed", async () => {
    const u = await h.signedInUser();
    const text = '{"name":"Coded"}';
    const gzipped = new Uint8Array(await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
    // A real gzip body; a plain one falsely labelled br or deflate, which a server reading it as plain would accept.
    for (const [raw, coding] of [
      [gzipped, "gzip"],
      [text, "br"],
      [text, "identity, deflate"],
    ] as const) {
      const res = await h.call("PATCH", "/api/v1/me/profile", undefined, {
        token: u.access_token,
        raw,
        headers: { "content-type": "application/json", "content-encoding": coding },
      });
      expectProblem(res, 415, "unsupported_media_type");
      expect(res.headers.get("accept-encoding"), coding).toBe("identity");
    }
    expect((await h.call("GET", "/api/v1/me/profile", undefined, { token: u.access_token })).json.profile.name).toBeNull();
    // `identity` is no coding at all.
    const plain = await h.call("PATCH", "/api/v1/me/profile", undefined, {
      token: u.access_token,
      raw: text,
      headers: { "content-type": "application/json", "content-encoding": "Identity" },
    });
    expect(plain.status, plain.text).toBe(200);
    expect(plain.json.profile.name).toBe("Coded");
  });

  it("answers a PATCH in a media type it does not take with 415 and Accept-Patch (RFC 5789 §2.2), which OPTIONS lists too (§3.1)", async () => {
    const u = await h.signedInUser();
    for (const type of ["application/merge-patch+json", "application/json-patch+json", "text/plain"]) {
      const res = await h.call("PATCH", "/api/v1/me/profile", undefined, {
        token: u.access_token,
        raw: '{"name":"Merge"}',
        headers: { "content-type": type },
      });
      expectProblem(res, 415, "unsupported_media_type");
      expect(res.headers.get("accept-patch"), type).toBe("application/json");
    }
    expect((await h.call("GET", "/api/v1/me/profile", undefined, { token: u.access_token })).json.profile.name).toBeNull();
    expect((await h.call("OPTIONS", "/api/v1/me/profile")).headers.get("accept-patch")).toBe("application/json");
    // Only PATCH has patch documents.
    const post = await h.call("POST", LOGIN, undefined, { raw: "{}", headers: { "content-type": "text/plain" } });
    expect(post.headers.get("accept-patch")).toBeNull();
    expect((await h.call("OPTIONS", LOGIN)).headers.get("accept-patch")).toBeNull();
  });

  it("refuses a body over 64 KiB with 413", async () => {
    const res = await h.call("POST", REGISTER, { email: `${"a".repeat(70 * KIB)}@example.com`, password: "x" });
    expectProblem(res, 413, "payload_too_large");
  });

  it("refuses a chunked body over 64 KiB that has no Content-Length", async () => {
    expect(new Request("http://x.test", { method: "POST", body: chunkedBody(KIB) }).headers.has("content-length")).toBe(false);
    const probe = probeD1(env.DB);
    const res = await h.call("POST", REGISTER, undefined, {
      raw: chunkedBody(200 * KIB),
      headers: { "content-type": "application/json" },
      env: { ...env, DB: probe.db },
    });
    expectProblem(res, 413, "payload_too_large");
    expect(probe.statements).toHaveLength(0);
  });

  it("accepts a chunked body under the limit", async () => {
    const res = await h.call("POST", LOGIN, undefined, { raw: chunkedBody(1 * KIB), headers: { "content-type": "application/json" } });
    // Parsed and validated (the email is unknown / password too short), not refused for its size.
    expect([400, 401]).toContain(res.status);
    expect(res.json.code).not.toBe("payload_too_large");
  });

  it("refuses a 1 MB username and a 100 KB password before any hashing or database work", async () => {
    const probe = probeD1(env.DB);
    const opts = { env: { ...env, DB: probe.db } };
    const hugeUsername = await h.call(
      "POST",
      REGISTER,
      { email: `${unique("big")}@example.com`, password: "Tr0ub4dor&3-horse", username: "u".repeat(1024 * KIB) },
      opts,
    );
    expect(hugeUsername.status).toBe(413);
    const hugePassword = await h.call("POST", LOGIN, { email: `${unique("big")}@example.com`, password: "p".repeat(100 * KIB) }, opts);
    expect(hugePassword.status).toBe(413);
    expect(probe.statements).toHaveLength(0);
  });

  it("refuses oversized fields that fit in the body limit with 400, before any database work", async () => {
    const probe = probeD1(env.DB);
    const opts = { env: { ...env, DB: probe.db } };
    const longPassword = await h.call("POST", LOGIN, { email: `${unique("big")}@example.com`, password: "p".repeat(60 * KIB) }, opts);
    expectProblem(longPassword, 400, "validation_failed");
    expect(longPassword.json.errors.map((e: { path: string }) => e.path)).toContain("password");
    const longUsername = await h.call(
      "POST",
      REGISTER,
      { email: `${unique("big")}@example.com`, password: "Tr0ub4dor&3-horse", username: "u".repeat(50 * KIB) },
      opts,
    );
    expectProblem(longUsername, 400, "validation_failed");
    expect(probe.statements).toHaveLength(0);
  });

  it("answers malformed JSON with a 400 problem", async () => {
    for (const raw of ['{"email": "a@example.com",', "not json", '{"a":1}}', ""]) {
      const res = await h.call("POST", LOGIN, undefined, { raw, headers: { "content-type": "application/json" } });
      expectProblem(res, 400);
      expect(["malformed_json", "validation_failed"]).toContain(res.json.code);
    }
    const broken = await h.call("POST", LOGIN, undefined, { raw: "{oops", headers: { "content-type": "application/json" } });
    expect(broken.json.code).toBe("malformed_json");
  });

  it("refuses JSON that is not UTF-8 (RFC 8259 §8.1) with 400 malformed_json, rather than storing U+FFFD for the client's characters", async () => {
    const u = await h.signedInUser();
    const encode = (text: string) => new TextEncoder().encode(text);
    // {"name":"é"} in ISO-8859-1 (0xE9 alone is not UTF-8), whatever charset the client names; and a lone surrogate, CESU-style.
    for (const [raw, type] of [
      [new Uint8Array([...encode('{"name":"'), 0xe9, ...encode('"}')]), "application/json; charset=iso-8859-1"],
      [new Uint8Array([...encode('{"name":"'), 0xe9, ...encode('"}')]), "application/json"],
      [new Uint8Array([...encode('{"name":"'), 0xed, 0xa0, 0x80, ...encode('"}')]), "application/json"],
    ] as const) {
      const res = await h.call("PATCH", "/api/v1/me/profile", undefined, { token: u.access_token, raw, headers: { "content-type": type } });
      expectProblem(res, 400, "malformed_json");
    }
    expect((await h.call("GET", "/api/v1/me/profile", undefined, { token: u.access_token })).json.profile.name).toBeNull();
    // UTF-8 with a byte order mark is read as before: the mark dropped.
    const bom = await h.call("PATCH", "/api/v1/me/profile", undefined, {
      token: u.access_token,
      raw: new Uint8Array([0xef, 0xbb, 0xbf, ...encode('{"name":"Zoë"}')]),
      headers: { "content-type": "application/json" },
    });
    expect(bom.status, bom.text).toBe(200);
    expect(bom.json.profile.name).toBe("Zoë");
  });

  it("answers JSON that is not an object with a 400 problem", async () => {
    for (const raw of ["[]", '"text"', "null", "42", "true"]) {
      const res = await h.call("POST", LOGIN, undefined, { raw, headers: { "content-type": "application/json" } });
      expectProblem(res, 400);
    }
  });

  it("answers wrong field types with a 400 naming the field", async () => {
    const res = await h.call("POST", LOGIN, { email: 42, password: ["x"] });
    expectProblem(res, 400, "validation_failed");
    const paths = res.json.errors.map((e: { path: string }) => e.path);
    expect(paths).toEqual(expect.arrayContaining(["email", "password"]));
  });
});

/** What `wrangler dev` and browsers' fetch hand the worker for a body-less POST or DELETE: an empty stream, no Content-Length. */
function emptyStream(chunks: Uint8Array[] = []) {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

describe("body-less requests", () => {
  const h = harness();
  /** The ways a client sends "no body": none at all, an empty stream, "" and an explicit Content-Length: 0. */
  const noBodies: { name: string; opts: () => { raw?: BodyInit; headers?: Record<string, string> } }[] = [
    { name: "no body", opts: () => ({}) },
    { name: "an empty stream", opts: () => ({ raw: emptyStream() }) },
    { name: "an empty chunked stream", opts: () => ({ raw: emptyStream([new Uint8Array(0), new Uint8Array(0)]) }) },
    { name: 'an empty string ""', opts: () => ({ raw: "" }) },
    { name: "Content-Length: 0", opts: () => ({ raw: "", headers: { "content-length": "0" } }) },
  ];

  async function staff() {
    const user = await h.registerVerified();
    await env.DB.prepare("UPDATE users SET is_staff = 1 WHERE id = ?").bind(user.id).run();
    return { ...user, ...(await h.login(user.email, user.password)) };
  }

  it("need no content type on the body-less POST and DELETE routes", async () => {
    for (const { name, opts } of noBodies) {
      const admin = await staff();
      const user = await h.signedInUser();
      const token = user.access_token;
      const status = await h.call("POST", "/api/v1/statuses", { content: "soon gone" }, { token });
      expect(status.status).toBe(201);
      const victim = await h.signedInUser();

      for (const [method, path, t, expected] of [
        ["DELETE", `/api/v1/statuses/${status.json.status.id}`, token, 204],
        ["DELETE", "/api/v1/admin/config/access_token_ttl", admin.access_token, 200],
        ["POST", `/api/v1/admin/users/${victim.id}/logout-all`, admin.access_token, 204],
        ["POST", "/api/v1/auth/logout-all", token, 204],
      ] as const) {
        const res = await h.call(method, path, undefined, { token: t, ...opts() });
        expect(res.status, `${method} ${path} with ${name}: ${res.text}`).toBe(expected);
      }
      const other = await h.signedInUser();
      const otherSessions = await h.call("GET", "/api/v1/me/sessions", undefined, { token: other.access_token });
      const otherId = otherSessions.json.items[0].id as string;
      const ended = await h.call("DELETE", `/api/v1/me/sessions/${otherId}`, undefined, { token: other.access_token, ...opts() });
      expect(ended.status, `DELETE /me/sessions/{id} with ${name}: ${ended.text}`).toBe(204);
    }
  });

  it("answer 400 naming the body when a route needs one", async () => {
    for (const { name, opts } of [
      ...noBodies,
      { name: "JSON content type and no bytes", opts: () => ({ raw: "", headers: { "content-type": "application/json" } }) },
      {
        name: "JSON content type and an empty stream",
        opts: () => ({ raw: emptyStream(), headers: { "content-type": "application/json" } }),
      },
    ]) {
      const res = await h.call("POST", LOGIN, undefined, opts());
      expectProblem(res, 400, "validation_failed");
      expect(res.json.errors, name).toEqual([{ path: "body", message: expect.stringMatching(/required/) }]);
    }
    const user = await h.signedInUser();
    const patch = await h.call("PATCH", "/api/v1/me/profile", undefined, { token: user.access_token, raw: emptyStream() });
    expectProblem(patch, 400, "validation_failed");
    expect(patch.json.errors).toEqual([{ path: "body", message: expect.stringMatching(/required/) }]);
  });

  it("on an operation that takes no body, ignore one sent anyway: not read, so no 413 or 415 it does not document", async () => {
    const big = "x".repeat(100 * 1024);
    for (const [name, opts] of [
      ["text", { raw: "x", headers: { "content-type": "text/plain" } }],
      ["100 KiB of JSON", { raw: JSON.stringify({ pad: big }), headers: { "content-type": "application/json" } }],
      ["a chunked stream", { raw: emptyStream([new TextEncoder().encode(big)]) }],
    ] as const) {
      const user = await h.signedInUser();
      const res = await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: user.access_token, ...opts });
      expect(res.status, `${name}: ${res.text}`).toBe(204);
    }
  });

  it("still refuses a non-empty body sent without a content type", async () => {
    const encoder = new TextEncoder();
    const res = await h.call("POST", LOGIN, undefined, { raw: emptyStream([new Uint8Array(0), encoder.encode("{}")]) });
    expectProblem(res, 415, "unsupported_media_type");
  });
});

describe("unknown routes, methods and failures", () => {
  const h = harness();

  it("answers an unknown route with a 404 problem", async () => {
    expectProblem(await h.call("GET", "/api/v1/does-not-exist"), 404, "not_found");
    expectProblem(await h.call("GET", "/wp-admin"), 404, "not_found");
    expectProblem(await h.call("POST", "/api/v2/auth/login", { email: "a@example.com", password: "x" }), 404, "not_found");
  });

  it("answers a wrong method on a known path with 405 and an Allow header naming the path's methods, OPTIONS included", async () => {
    for (const [method, path, allow] of [
      ["GET", LOGIN, "OPTIONS, POST"],
      ["DELETE", "/api/v1/auth/register", "OPTIONS, POST"],
      ["PUT", "/health", "GET, HEAD, OPTIONS"],
      ["POST", "/api/v1/me", "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"],
      ["POST", "/api/v1/me/sessions/some-id", "DELETE, OPTIONS"],
      ["PROPFIND", "/api/v1/statuses/some-id", "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"],
      ["DELETE", "/openapi.json", "GET, HEAD, OPTIONS"],
    ] as const) {
      const res = await h.call(method, path);
      expectProblem(res, 405, "method_not_allowed");
      expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow);
    }
  });

  it("answers OPTIONS without an Origin (not a CORS preflight) with 204 and the path's Allow, and 404 on an unknown path", async () => {
    for (const [path, allow] of [
      ["/api/v1/me", "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"],
      [LOGIN, "OPTIONS, POST"],
      ["/health", "GET, HEAD, OPTIONS"],
    ] as const) {
      const res = await h.call("OPTIONS", path);
      expect(res.status, path).toBe(204);
      expect(res.headers.get("allow"), path).toBe(allow);
      expectSecurityHeaders(res);
    }
    expectProblem(await h.call("OPTIONS", "/api/v1/nowhere"), 404, "not_found");
  });

  it("lists the same methods in a 405's Allow as OPTIONS does for the path (RFC 9110 §15.5.6, §9.3.7)", async () => {
    for (const [path, wrong] of [
      ["/api/v1/me", "POST"],
      [LOGIN, "GET"],
      ["/health", "DELETE"],
      ["/.well-known/jwks.json", "PUT"],
    ] as const) {
      const options = await h.call("OPTIONS", path);
      const refused = await h.call(wrong, path);
      expect(refused.status, path).toBe(405);
      expect(refused.headers.get("allow"), path).toBe(options.headers.get("allow"));
    }
  });

  it("answers HEAD wherever GET is answered", async () => {
    const res = await h.call("HEAD", "/health");
    expect(res.status).toBe(200);
    expect(res.text).toBe("");
    const post = await h.call("HEAD", LOGIN);
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("OPTIONS, POST");
  });

  it("checks the method before the body: a wrong method with a text body is 405, not 415", async () => {
    const res = await h.call("PUT", LOGIN, undefined, { raw: "hello", headers: { "content-type": "text/plain" } });
    expectProblem(res, 405, "method_not_allowed");
    expect(res.headers.get("allow")).toBe("OPTIONS, POST");
  });

  it("derives Allow from the registered routes: every documented path refuses every other method", async () => {
    const doc = (await h.call("GET", "/openapi.json")).json as { paths: Record<string, Record<string, unknown>> };
    for (const [template, operations] of Object.entries(doc.paths)) {
      const path = template.replace(/\{[^}]+\}/g, "x");
      const methods = Object.keys(operations).map((m) => m.toUpperCase());
      if (methods.includes("GET")) methods.push("HEAD");
      const expected = [...methods, "OPTIONS"].sort().join(", ");
      for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE"].filter((m) => !methods.includes(m))) {
        const res = await h.call(method, path);
        expect(res.status, `${method} ${template}`).toBe(405);
        expect(res.headers.get("allow"), `${method} ${template}`).toBe(expected);
      }
    }
  });

  it("answers an unknown method on an unknown path with 404, not 415", async () => {
    expectProblem(await h.call("PROPFIND", "/api/v1/nowhere", undefined, { raw: emptyStream() }), 404, "not_found");
  });

  it("answers an unexpected failure with a 500 problem that reveals nothing internal", async () => {
    // (A broken secret is a 503 naming nothing either: see setup-check.test.ts.)
    const probe = probeD1(env.DB);
    probe.failWhen(/profiles/);
    const res = await h.call("GET", "/api/v1/profiles", undefined, { env: { ...env, DB: probe.db } });
    expectProblem(res, 500, "internal_error");
    expect(res.text).not.toMatch(/D1_ERROR|injected|profiles/);
  });
});
