/**
 * One structured log line per request (lib/log.ts), written when the response is ready:
 *   {"time","level","event":"request","request_id","method","route","status","duration_ms",
 *    "user_ref"?, "colo"?, "country"?, "error_code"?}
 * `route` is the pattern that answered (`/api/v1/profiles/:username`), never the raw path, so ids
 * and usernames stay out of the log and lines group by endpoint; null when no route matched (404,
 * 405). The level is `error` for 5xx, `warn` for 4xx. No headers, bodies, query strings or IPs.
 */
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "../env";
import type { Clock } from "../lib/clock";
import { loggableError } from "../lib/errors";
import { log, userRef } from "../lib/log";

/** The registered pattern of the handler that answered: the last matched route that is not middleware. */
export function answeringRoute(c: Context): string | null {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) {
    const route = routes[i];
    if (route && route.method !== "ALL") return route.path;
  }
  return null;
}

/**
 * The `error` line of an unexpected error (one that answers 500, or that aborts a body already
 * being sent), with the request it broke; SQL parameters are stripped (`loggableError`).
 */
export function logUnexpectedError(c: Context, error: unknown): void {
  log("error", "error", {
    request_id: c.get("requestId"),
    method: c.req.method,
    route: answeringRoute(c),
    error: loggableError(error),
  });
}

/**
 * Logs the request after it is answered. `clock` measures the duration; note that workerd only
 * advances time at I/O, so `duration_ms` is the time spent waiting on bindings and the network,
 * which is what varies in production, not CPU time.
 */
export function requestLog(options: { clock: Clock }): MiddlewareHandler<AppEnv> {
  return async function requestLog(c, next) {
    const started = options.clock.now();
    await next();
    const status = c.res.status;
    const cf = c.req.raw.cf as { colo?: unknown; country?: unknown } | undefined;
    const user = c.get("user") as { id?: string } | undefined;
    log(status >= 500 ? "error" : status >= 400 ? "warn" : "info", "request", {
      request_id: c.get("requestId"),
      method: c.req.method,
      route: answeringRoute(c),
      status,
      duration_ms: Math.max(0, options.clock.now() - started),
      user_ref: user?.id ? await userRef(c.env?.OTP_SECRET, user.id) : undefined,
      colo: typeof cf?.colo === "string" ? cf.colo : undefined,
      country: typeof cf?.country === "string" ? cf.country : undefined,
      error_code: status >= 400 ? (c.get("problemCode") ?? undefined) : undefined,
    });
  };
}
