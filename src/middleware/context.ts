import type { MiddlewareHandler } from "hono";
import type { ConfigCache } from "../config/config.service";
import { createDb } from "../db/client";
import type { AppEnv } from "../env";
import type { Clock } from "../lib/clock";
import { parseIp } from "../lib/ip";
import { stripControlCharacters } from "../lib/text";

export const USER_AGENT_MAX = 256;

/**
 * The user agent as stored and shown: control characters (C0, DEL, C1, bidi overrides) removed so a crafted
 * header cannot forge lines in a log or a page, then cut to USER_AGENT_MAX characters.
 */
export function cleanUserAgent(header: string | undefined): string | null {
  if (header === undefined) return null;
  const cleaned = stripControlCharacters(header).slice(0, USER_AGENT_MAX);
  return cleaned || null;
}

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
        ip: parseIp(c.req.header("cf-connecting-ip")),
        userAgent: cleanUserAgent(c.req.header("user-agent")),
      },
    });
    await next();
  };
}
