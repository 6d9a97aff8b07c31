import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { editResponseHeaders } from "../../src/middleware/response-headers";

/** An app whose one middleware adds a header to whatever `answer` returns. */
function appAnswering(answer: () => Response) {
  const app = new Hono();
  app.use(async (c, next) => {
    await next();
    editResponseHeaders(c, (headers) => headers.append("Vary", "Origin"));
  });
  app.get("/", answer);
  return app;
}

describe("editResponseHeaders", () => {
  it("changes a response's own headers in place, keeping the response", async () => {
    const made = new Response("body", { status: 201, headers: { "X-Made": "here" } });
    const res = await appAnswering(() => made).request("/");
    expect(res).toBe(made);
    expect([res.status, res.headers.get("vary"), res.headers.get("x-made"), await res.text()]).toEqual([201, "Origin", "here", "body"]);
  });

  it("copies a response whose headers are immutable once, with its status, headers and body", async () => {
    // Response.redirect() answers with immutable headers (Fetch standard), like fetch() and the Cache API do.
    const redirect = Response.redirect("https://example.com/elsewhere", 307);
    expect(() => redirect.headers.set("X-Probe", "1")).toThrow(TypeError);
    const res = await appAnswering(() => redirect).request("/");
    expect([res.status, res.headers.get("location"), res.headers.get("vary")]).toEqual([307, "https://example.com/elsewhere", "Origin"]);
  });
});
