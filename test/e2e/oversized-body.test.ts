/**
 * A refused oversized body must not hurt the next client. The worker answers 413 while the
 * client is still sending; whatever happens to the rest of that body, the next request (a new
 * client, a new connection) must be served normally, never a 503 from wrangler dev's proxy.
 */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, signedInUser, startDevServer } from "./dev-server";

let server: DevServer;
beforeAll(async () => {
  server = await startDevServer();
});
afterAll(async () => {
  await server?.stop();
});

const MIB = 1024 * 1024;

/**
 * Sends `total` bytes in 16 KiB chunks with `Transfer-Encoding: chunked` (no Content-Length),
 * or with a Content-Length when `declareLength`, on a connection of its own. Resolves with the
 * status, or the error if the connection failed before any response.
 */
function sendLarge(
  url: string,
  path: string,
  opts: { total: number; contentType: string; method?: string; headers?: Record<string, string>; declareLength?: boolean },
) {
  return new Promise<{ status?: number; error?: string }>((resolve) => {
    const headers: Record<string, string | number> = { "content-type": opts.contentType, ...opts.headers };
    if (opts.declareLength) headers["content-length"] = opts.total;
    else headers["transfer-encoding"] = "chunked";
    const req = request(`${url}${path}`, { method: opts.method ?? "POST", headers, agent: false });
    let settled = false;
    const done = (value: { status?: number; error?: string }) => {
      if (settled) return;
      settled = true;
      resolve(value);
    };
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => done({ status: res.statusCode }));
      res.on("error", () => done({ status: res.statusCode }));
    });
    req.on("error", (error) => done({ error: String(error) }));
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    let sent = 0;
    const pump = () => {
      while (sent < opts.total) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    pump();
  });
}

let probes = 0;
/** A plain request from a fresh connection (a wrong password, each for its own address: no lockout). */
async function next(url: string) {
  const res = await fetch(`${url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json", connection: "close" },
    body: JSON.stringify({ email: `nobody-${++probes}@example.com`, password: "not-the-password-1" }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe("an oversized body refused with 413 (real dev server)", () => {
  it("a chunked 1 MiB JSON body gets 413, and the next client's request is served", async () => {
    const statuses: number[] = [];
    for (let round = 0; round < 5; round++) {
      const big = await sendLarge(server.url, "/api/v1/auth/login", { total: MIB, contentType: "application/json" });
      expect(big.status, big.error).toBe(413);
      statuses.push(await next(server.url));
    }
    expect(
      statuses.every((status) => status === 401),
      `${statuses}\n${server.output().slice(-3000)}`,
    ).toBe(true);
  });

  it("a chunked 3 MiB avatar upload (raw or multipart) gets 413, and the next client's request is served", async () => {
    const { accessToken } = await signedInUser(server, "big-avatar@example.com", "analytical-engine-1843");
    const headers = { authorization: `Bearer ${accessToken}` };
    const statuses: number[] = [];
    for (const contentType of ["image/png", "multipart/form-data; boundary=xyz", "image/png"]) {
      const big = await sendLarge(server.url, "/api/v1/me/avatar", { method: "PUT", total: 3 * MIB, contentType, headers });
      expect(big.status, big.error).toBe(413);
      statuses.push(await next(server.url));
    }
    expect(
      statuses.every((status) => status === 401),
      `${statuses}\n${server.output().slice(-3000)}`,
    ).toBe(true);
  });

  it("a chunked 1 MiB body sent to an operation that takes none is ignored (204), and the next client's request is served", async () => {
    const statuses: number[] = [];
    for (const contentType of ["text/plain", "application/json"]) {
      // logout-all ends the sign-in: one account each.
      const email = `ignored-${contentType.replace("/", "-")}@example.com`;
      const { accessToken } = await signedInUser(server, email, "analytical-engine-1843");
      const headers = { authorization: `Bearer ${accessToken}` };
      const sent = await sendLarge(server.url, "/api/v1/auth/logout-all", { total: MIB, contentType, headers });
      expect(sent.status, sent.error).toBe(204);
      statuses.push(await next(server.url));
    }
    expect(statuses, server.output().slice(-3000)).toEqual([401, 401]);
  });

  it("a declared Content-Length over the limit gets 413 without reading, and the next client's request is served", async () => {
    const big = await sendLarge(server.url, "/api/v1/auth/login", { total: 4 * MIB, contentType: "application/json", declareLength: true });
    expect(big.status, big.error).toBe(413);
    expect(await next(server.url)).toBe(401);
  });
});
