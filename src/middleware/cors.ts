import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "../env";
import { BOOKMARK_HEADER } from "../store";
import { editResponseHeaders } from "./response-headers";

/** CORS_ORIGINS parsed once per isolate (per distinct value), not on every request. */
const originSets = new Map<string, Set<string>>();
function allowedOrigins(list: string | undefined): Set<string> {
  const key = list ?? "";
  let set = originSets.get(key);
  if (!set) {
    set = new Set(
      key
        .split(",")
        .map((o) => o.trim())
        .filter(Boolean),
    );
    originSets.set(key, set);
  }
  return set;
}

/**
 * Response headers a listed origin's script may read. Retry-After (429, 503), WWW-Authenticate
 * (401: refresh, or sign in again), Location (201: what was created) and Content-Disposition (the
 * export's file name) are not CORS-safelisted response headers: without these a browser client
 * could not read them.
 */
const EXPOSE_HEADERS = ["X-Request-Id", BOOKMARK_HEADER, "Retry-After", "WWW-Authenticate", "Location", "Content-Disposition"];

/** The origin to allow: a listed one as sent; "null", an unlisted one or none gets null. */
function allowedOrigin(origin: string | undefined, env: Env): string | null {
  return origin && origin !== "null" && allowedOrigins(env.CORS_ORIGINS).has(origin) ? origin : null;
}

/**
 * A CORS preflight is an OPTIONS carrying both `Origin` and `Access-Control-Request-Method`
 * (Fetch §3.2.2, "CORS-preflight request"). Any other OPTIONS, with an Origin or not, asks what
 * the path allows (RFC 9110 §9.3.7) and is answered like one (middleware/routes.ts).
 */
export function isPreflight(headers: Headers): boolean {
  return headers.has("origin") && headers.has("access-control-request-method");
}

/**
 * CORS for the origins listed in CORS_ORIGINS; "null" and unlisted origins get no CORS headers.
 * Every answer says `Vary: Origin`, so a shared cache never hands an answer made without CORS
 * headers to a cross-origin caller. A request without an Origin header has no CORS to answer and
 * skips Hono's cors middleware, which sets its headers before the handler runs: that makes a
 * placeholder response whose headers are then copied into the real one, measurable CPU on every
 * request (README, Performance). Hono's takes every OPTIONS for a preflight, so a plain OPTIONS
 * with an Origin skips it too, and gets the headers of an actual response here.
 */
export function crossOrigin(): MiddlewareHandler<AppEnv> {
  const corsHeaders = cors({
    origin: (origin, c) => allowedOrigin(origin, c.env),
    allowHeaders: ["Authorization", "Content-Type", "X-Request-Id", BOOKMARK_HEADER],
    exposeHeaders: EXPOSE_HEADERS,
    allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE"],
    maxAge: 600,
  });
  return async function crossOrigin(c, next) {
    const origin = c.req.header("origin");
    if (origin !== undefined && (c.req.method !== "OPTIONS" || isPreflight(c.req.raw.headers))) return corsHeaders(c, next);
    await next();
    const allowed = allowedOrigin(origin, c.env);
    editResponseHeaders(c, (headers) => {
      headers.append("Vary", "Origin");
      if (allowed === null) return;
      headers.set("Access-Control-Allow-Origin", allowed);
      headers.set("Access-Control-Expose-Headers", EXPOSE_HEADERS.join(","));
    });
  };
}
