/**
 * Test helpers: the real app (same middleware, same services) driven through its fetch handler
 * with the real local bindings and a movable clock. Storage is shared within a test file, so
 * factories make unique users.
 */
import { env } from "cloudflare:test";
import { createApp } from "../src/app";
import { FixedClock } from "../src/lib/clock";
import { uniqueId } from "./ids";

export const BASE = "http://latchkey.test";
/** The edge cache's avatar keys are under https whatever the request's scheme (src/features/profiles/avatar.cache.ts). */
export const AVATAR_CACHE_BASE = BASE.replace(/^http:/, "https:");
/** The password the factories register with; ids are written without its characters (test/ids.ts). */
export const STANDARD_PASSWORD = "Tr0ub4dor&3-horse";
export const unique = (prefix = "u") => `${prefix}${uniqueId(STANDARD_PASSWORD)}`;

export interface CallOptions {
  token?: string;
  headers?: Record<string, string>;
  /** A raw body sent as-is (no JSON encoding). */
  raw?: BodyInit;
  env?: Env;
  /** Where the request is addressed (scheme, host and port); BASE unless given. */
  origin?: string;
}

/** A test harness around one app instance with its own clock (config cache disabled). */
export function harness(options: { configCacheMs?: number; start?: number } = {}) {
  const clock = FixedClock(options.start ?? Date.now());
  const app = createApp({ clock, configCacheMs: options.configCacheMs ?? 0 });
  let ipCounter = 0;
  /** A distinct client IP per call unless given, so per-IP limits don't couple unrelated tests. */
  const nextIp = () => `203.0.113.${(ipCounter++ % 250) + 1}`;

  async function call(method: string, path: string, body?: unknown, opts: CallOptions = {}) {
    const headers: Record<string, string> = { "cf-connecting-ip": nextIp(), ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let payload: BodyInit | undefined = opts.raw;
    if (body !== undefined && payload === undefined) {
      payload = JSON.stringify(body);
      headers["content-type"] ??= "application/json";
    }
    const res = await app.fetch(new Request(`${opts.origin ?? BASE}${path}`, { method, headers, body: payload }), opts.env ?? env);
    const text = await res.text();
    // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes
    let json: any = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: res.status, headers: res.headers, json, text };
  }

  async function registerVerified(overrides: { email?: string; username?: string; password?: string } = {}) {
    const email = overrides.email ?? `${unique("user")}@example.com`;
    const password = overrides.password ?? STANDARD_PASSWORD;
    const username = overrides.username ?? unique("n");
    const res = await call("POST", "/api/v1/auth/register", { email, password, username });
    if (res.status !== 201) throw new Error(`register failed: ${res.status} ${res.text}`);
    await env.DB.prepare("UPDATE users SET email_verified = 1 WHERE id = ?").bind(res.json.user.id).run();
    return { id: res.json.user.id as string, email, password, username };
  }

  async function login(email: string, password: string, opts: CallOptions = {}) {
    const res = await call("POST", "/api/v1/auth/login", { email, password }, opts);
    if (res.status !== 200) throw new Error(`login failed: ${res.status} ${res.text}`);
    return res.json as { access_token: string; refresh_token: string; expires_in: number; refresh_expires_in: number };
  }

  /** A verified user with a fresh token pair. */
  async function signedInUser(overrides: { email?: string; username?: string; password?: string } = {}) {
    const user = await registerVerified(overrides);
    const tokens = await login(user.email, user.password);
    return { ...user, ...tokens };
  }

  return { app, clock, call, registerVerified, login, signedInUser };
}

/** Sets (or with `undefined`, deletes) a hot config key in the local KV. */
export async function setConfig(key: string, value: string | undefined) {
  if (value === undefined) await env.CONFIG.delete(key);
  else await env.CONFIG.put(key, value);
}

/** Decodes a JWT's header and payload without verifying it. */
export function decodeJwt(token: string) {
  const [h, p] = token.split(".");
  const decode = (part: string) => JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
  return { header: decode(h as string), payload: decode(p as string) };
}

/**
 * Characters that draw nothing yet change how text looks or reads: the zero-width ones (space,
 * non-joiner, joiner, word joiner, BOM) and the bidirectional controls of UAX #9: the marks (LRM,
 * RLM, the Arabic letter mark), which right-to-left writers type to place punctuation, and the
 * formatting characters (embeddings and overrides, isolates), which reorder whole runs of text
 * ("Trojan Source"). Written here, not imported, so the tests state the rule rather than repeat the code's.
 */
export const ZERO_WIDTH = ["\u200B", "\u200C", "\u200D", "\u2060", "\uFEFF"];
export const BIDI_MARKS = ["\u200E", "\u200F", "\u061C"];
export const BIDI_FORMATTING = ["\u202A", "\u202B", "\u202C", "\u202D", "\u202E", "\u2066", "\u2067", "\u2068", "\u2069"];
export const BIDI_CONTROLS = [...BIDI_MARKS, ...BIDI_FORMATTING];
/** `U+200B` for a failure message. */
export const codePoint = (ch: string) => `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
