import { env } from "cloudflare:test";
/** What the worker accepts of a request's credentials and origin headers, and what it stores of them. */
import { describe, expect, it } from "vitest";
import { clientKey, parseIp } from "../../src/lib/ip";
import { harness, unique } from "../helpers";

const ME = "/api/v1/me";

describe("Authorization header", () => {
  const h = harness();

  it("matches the Bearer scheme case-insensitively (RFC 7235)", async () => {
    const u = await h.signedInUser();
    for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"]) {
      const res = await h.call("GET", ME, undefined, { headers: { authorization: `${scheme} ${u.access_token}` } });
      expect(res.status).toBe(200);
    }
  });

  it("refuses a JWT whose segments carry base64 padding", async () => {
    const u = await h.signedInUser();
    const [header, payload, signature] = u.access_token.split(".");
    const padded = [
      `${header}=.${payload}.${signature}`,
      `${header}.${payload}==.${signature}`,
      `${header}.${payload}.${signature}=`,
      `${u.access_token}=`,
    ];
    for (const token of padded) {
      const res = await h.call("GET", ME, undefined, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(401);
    }
  });

  it("refuses other schemes and malformed tokens", async () => {
    const u = await h.signedInUser();
    for (const value of [
      `Basic ${u.access_token}`,
      `Bearer${u.access_token}`,
      `Bearer ${u.access_token} x`,
      "Bearer a.b",
      "Bearer a+b.c.d",
    ]) {
      expect((await h.call("GET", ME, undefined, { headers: { authorization: value } })).status).toBe(401);
    }
  });
});

describe("client address and user agent", () => {
  const h = harness();

  async function sessionAfterLogin(headers: Record<string, string>) {
    const u = await h.registerVerified();
    const tokens = await h.login(u.email, u.password, { headers });
    const res = await h.call("GET", "/api/v1/me/sessions", undefined, { token: tokens.access_token });
    return res.json.items[0] as { ip: string | null; user_agent: string | null };
  }

  it("stores CF-Connecting-IP only when it is an IPv4 or IPv6 address", async () => {
    expect((await sessionAfterLogin({ "cf-connecting-ip": "<script>alert(1)</script>" })).ip).toBeNull();
    expect((await sessionAfterLogin({ "cf-connecting-ip": "999.1.1.1" })).ip).toBeNull();
    expect((await sessionAfterLogin({ "cf-connecting-ip": "2001:DB8:0:0:0:0:0:1" })).ip).toBe("2001:db8::1");
    expect((await sessionAfterLogin({ "cf-connecting-ip": "192.0.2.7" })).ip).toBe("192.0.2.7");
  });

  it("strips control characters from stored user agents", async () => {
    const session = await sessionAfterLogin({ "user-agent": "Evil\u0001Agent\u007f/1.0\u001b (x)" });
    expect(session.user_agent).toBe("EvilAgent/1.0 (x)");
  });

  it("strips every bidi control from stored user agents, so a device name cannot be shown reordered", async () => {
    const session = await sessionAfterLogin({ "user-agent": "Agent\u200F/1.0\u061C (x\u200E)\u202E" });
    expect(session.user_agent).toBe("Agent/1.0 (x)");
  });

  it("parses addresses strictly", () => {
    expect(parseIp("10.0.0.1")).toBe("10.0.0.1");
    expect(parseIp("010.0.0.1")).toBeNull();
    expect(parseIp("1.2.3")).toBeNull();
    expect(parseIp("::ffff:192.0.2.1")).toBe("::ffff:c000:201");
    expect(parseIp("fe80::1%eth0")).toBeNull();
    expect(parseIp("[::1]")).toBeNull();
    expect(parseIp("::1")).toBe("::1");
    expect(parseIp("not an ip")).toBeNull();
    expect(parseIp(undefined)).toBeNull();
  });

  it("counts per-client limits per IPv4 address, per IPv6 /64, and IPv4-mapped addresses as IPv4", () => {
    const key = (text: string | null) => clientKey(parseIp(text));
    expect(key("192.0.2.7")).toBe("192.0.2.7");
    expect(key("2001:db8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(key("2001:DB8:1:2:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(key("2001:db8:1:3::1")).toBe("2001:db8:1:3::/64");
    expect(key("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(key("::1")).toBe("0:0:0:0::/64");
    expect(key("::ffff:192.0.2.1")).toBe("192.0.2.1");
    expect(key(null)).toBe("unknown");
  });

  it("limits registrations per IPv6 /64, whichever of its addresses a client uses", async () => {
    const pbkdf2 = { ...env, PASSWORD_HASHER: "pbkdf2" } as Env;
    for (let i = 1; i <= 20; i++) {
      const res = await h.call(
        "POST",
        "/api/v1/auth/register",
        { email: `${unique("v6")}@example.com`, password: "Tr0ub4dor&3-horse" },
        { headers: { "cf-connecting-ip": `2001:db8:77:1::${i.toString(16)}` }, env: pbkdf2 },
      );
      expect(res.status, res.text).toBe(201);
    }
    const next = { email: `${unique("v6")}@example.com`, password: "Tr0ub4dor&3-horse" };
    const sameBlock = await h.call("POST", "/api/v1/auth/register", next, {
      headers: { "cf-connecting-ip": "2001:db8:77:1:dead:beef:0:1" },
      env: pbkdf2,
    });
    expect(sameBlock.status).toBe(429);
    const otherBlock = await h.call("POST", "/api/v1/auth/register", next, {
      headers: { "cf-connecting-ip": "2001:db8:77:2::1" },
      env: pbkdf2,
    });
    expect(otherBlock.status, otherBlock.text).toBe(201);
  });
});
