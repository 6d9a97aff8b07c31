import type { MiddlewareHandler } from "hono";
import type { ConfigCache } from "../config/config.service";
import { createDb } from "../db/client";
import type { AppEnv } from "../env";
import type { Clock } from "../lib/clock";

export const USER_AGENT_MAX = 256;

/**
 * Wires the request's dependencies once: the Drizzle client over this request's D1 binding, the
 * injected clock, the config reader and the caller's address. The IP comes only from
 * `CF-Connecting-IP`, which Cloudflare sets; `X-Forwarded-For` is client-controlled and ignored.
 */
export function requestContext(options: { clock: Clock; config: ConfigCache }): MiddlewareHandler<AppEnv> {
  return async function requestContext(c, next) {
    const env = c.env;
    c.set("deps", {
      db: createDb(env.DB),
      clock: options.clock,
      config: () => options.config.get(env.CONFIG),
      invalidateConfig: () => options.config.invalidate(),
      env,
      meta: {
        ip: c.req.header("cf-connecting-ip")?.slice(0, 64) ?? null,
        userAgent: c.req.header("user-agent")?.slice(0, USER_AGENT_MAX) ?? null,
      },
    });
    await next();
  };
}
