import { afterEach, describe, expect, it, vi } from "vitest";
import { CONFIG_KEYS } from "../../src/config/config.definitions";
import { decodeJwt, harness, setConfig } from "../helpers";

const DEFAULT_ACCESS_TTL = CONFIG_KEYS.access_token_ttl.default;
const DEFAULT_REFRESH_TTL = CONFIG_KEYS.refresh_token_ttl.default;

describe("token lifetimes from KV", () => {
  const h = harness();

  afterEach(async () => {
    await setConfig("access_token_ttl", undefined);
    await setConfig("refresh_token_ttl", undefined);
  });

  /** Signs in and returns the lifetimes the response and the JWT carry. */
  async function lifetimes(u: { email: string; password: string }) {
    const tokens = await h.login(u.email, u.password);
    const { payload } = decodeJwt(tokens.access_token);
    return { expiresIn: tokens.expires_in, jwtLifetime: payload.exp - payload.iat, refreshExpiresIn: tokens.refresh_expires_in, tokens };
  }

  it("uses the documented defaults when the keys are missing", async () => {
    expect(DEFAULT_ACCESS_TTL).toBe(30);
    expect(DEFAULT_REFRESH_TTL).toBe(2_592_000);
    const u = await h.registerVerified();
    expect(await lifetimes(u)).toMatchObject({ expiresIn: 30, jwtLifetime: 30, refreshExpiresIn: 2_592_000 });
  });

  it("applies an access_token_ttl edit on the next login, without a restart", async () => {
    const u = await h.registerVerified();
    expect((await lifetimes(u)).expiresIn).toBe(30);
    await setConfig("access_token_ttl", "120");
    const after = await lifetimes(u);
    expect(after.expiresIn).toBe(120);
    expect(after.jwtLifetime).toBe(120);
    // The token really lives that long: still accepted after 100 s, refused after 121 s.
    h.clock.advance(100_000);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: after.tokens.access_token })).status).toBe(200);
    h.clock.advance(21_000);
    expect((await h.call("GET", "/api/v1/me", undefined, { token: after.tokens.access_token })).status).toBe(401);
  });

  it("applies a refresh_token_ttl edit on the next login", async () => {
    const u = await h.registerVerified();
    await setConfig("refresh_token_ttl", "3600");
    const { refreshExpiresIn, tokens } = await lifetimes(u);
    expect(refreshExpiresIn).toBe(3600);
    h.clock.advance(3601_000);
    expect((await h.call("POST", "/api/v1/auth/refresh", { refresh_token: tokens.refresh_token })).status).toBe(401);
  });

  it("applies lifetimes to refreshed pairs too", async () => {
    const u = await h.registerVerified();
    const { tokens } = await lifetimes(u);
    await setConfig("access_token_ttl", "300");
    await setConfig("refresh_token_ttl", "7200");
    const res = await h.call("POST", "/api/v1/auth/refresh", { refresh_token: tokens.refresh_token });
    expect(res.json).toMatchObject({ expires_in: 300, refresh_expires_in: 7200 });
    const { payload } = decodeJwt(res.json.access_token);
    expect(payload.exp - payload.iat).toBe(300);
  });

  it.each([
    ["non-numeric", "abc"],
    ["zero", "0"],
    ["negative", "-5"],
    ["fractional", "12.5"],
    ["absurdly large", "999999999999"],
    ["above the maximum", String(CONFIG_KEYS.access_token_ttl.max + 1)],
    ["below the minimum", String(CONFIG_KEYS.access_token_ttl.min - 1)],
    ["empty", ""],
    ["JSON", '{"ttl":60}'],
  ])("falls back to the default for a %s access_token_ttl", async (_name, raw) => {
    const u = await h.registerVerified();
    await setConfig("access_token_ttl", raw);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      expect(await lifetimes(u)).toMatchObject({ expiresIn: DEFAULT_ACCESS_TTL, jwtLifetime: DEFAULT_ACCESS_TTL });
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/"event":"config.invalid","key":"access_token_ttl"/));
    } finally {
      warn.mockRestore();
    }
  });

  it.each([
    ["non-numeric", "thirty days"],
    ["zero", "0"],
    ["negative", "-3600"],
    ["absurdly large", "1e30"],
    ["above the maximum", String(CONFIG_KEYS.refresh_token_ttl.max + 1)],
  ])("falls back to the default for a %s refresh_token_ttl", async (_name, raw) => {
    const u = await h.registerVerified();
    await setConfig("refresh_token_ttl", raw);
    expect((await lifetimes(u)).refreshExpiresIn).toBe(DEFAULT_REFRESH_TTL);
  });

  it("accepts a value with surrounding whitespace", async () => {
    const u = await h.registerVerified();
    await setConfig("access_token_ttl", " 45 \n");
    expect((await lifetimes(u)).expiresIn).toBe(45);
  });

  it("reuses KV values for at most the configured cache time", async () => {
    const cached = harness({ configCacheMs: 5_000 });
    await setConfig("access_token_ttl", "60");
    const u = await cached.registerVerified();
    expect((await cached.login(u.email, u.password)).expires_in).toBe(60);
    await setConfig("access_token_ttl", "90");
    expect((await cached.login(u.email, u.password)).expires_in).toBe(60);
    cached.clock.advance(5_000);
    expect((await cached.login(u.email, u.password)).expires_in).toBe(90);
  });
});
