import type { MiddlewareHandler } from "hono";
import type { ConfigCache } from "../config/config.service";
import { createDeps } from "../deps";
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
 * Wires the request's dependencies once (`createDeps`: the stores over this request's database,
 * the injected clock, the config reader, keys, buckets, outbox) with the caller's address. The IP
 * comes only from `CF-Connecting-IP`, which Cloudflare sets; `X-Forwarded-For` is
 * client-controlled and ignored.
 */
export function requestContext(options: { clock: Clock; config: ConfigCache }): MiddlewareHandler<AppEnv> {
  return async function requestContext(c, next) {
    c.set(
      "deps",
      createDeps(c.env, {
        clock: options.clock,
        config: options.config,
        meta: {
          ip: parseIp(c.req.header("cf-connecting-ip")),
          userAgent: cleanUserAgent(c.req.header("user-agent")),
        },
      }),
    );
    await next();
  };
}
