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
 * CORS for the origins listed in CORS_ORIGINS; "null" and unlisted origins get no CORS headers.
 * Every answer says `Vary: Origin`, so a shared cache never hands an answer made without CORS
 * headers to a cross-origin caller. A request without an Origin header has no CORS to answer and
 * skips Hono's cors middleware, which sets its headers before the handler runs: that makes a
 * placeholder response whose headers are then copied into the real one, measurable CPU on every
 * request (README, Performance).
 */
export function crossOrigin(): MiddlewareHandler<AppEnv> {
  const corsHeaders = cors({
    origin: (origin, c) => (origin && origin !== "null" && allowedOrigins(c.env.CORS_ORIGINS).has(origin) ? origin : null),
    allowHeaders: ["Authorization", "Content-Type", "X-Request-Id", BOOKMARK_HEADER],
    // Retry-After (429, 503), WWW-Authenticate (401: refresh, or sign in again), Location (201:
    // what was created) and Content-Disposition (the export's file name) are not CORS-safelisted
    // response headers: without these a browser client could not read them.
    exposeHeaders: ["X-Request-Id", BOOKMARK_HEADER, "Retry-After", "WWW-Authenticate", "Location", "Content-Disposition"],
    allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE"],
    maxAge: 600,
  });
  return async function crossOrigin(c, next) {
    if (c.req.header("origin") !== undefined) return corsHeaders(c, next);
    await next();
    editResponseHeaders(c, (headers) => headers.append("Vary", "Origin"));
  };
}
