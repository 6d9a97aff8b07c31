import type { Context, MiddlewareHandler } from "hono";
import type { ConfigCache } from "../config/config.service";
import { createDeps } from "../deps";
import type { AppEnv } from "../env";
import type { Clock } from "../lib/clock";
import { parseIp } from "../lib/ip";
import { stripControlCharacters } from "../lib/text";
import { BOOKMARK_HEADER, parseBookmark, sessionStartFor } from "../store";
import { editResponseHeaders } from "./response-headers";

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

/** The invocation's `waitUntil`; hono's `executionCtx` throws when the app runs without one. */
function waitUntilOf(c: Context): ((task: Promise<unknown>) => void) | undefined {
  try {
    const ctx = c.executionCtx;
    return (task) => ctx.waitUntil(task);
  } catch {
    return undefined;
  }
}

/**
 * Wires the request's dependencies once (`createDeps`: the stores over this request's database
 * session, the injected clock, the config reader, keys, buckets, the avatar edge cache under this
 * request's origin, outbox) with the caller's address. The IP comes only from `CF-Connecting-IP`,
 * which Cloudflare sets; `X-Forwarded-For` is client-controlled and ignored. The session starts
 * where src/store/replica.ts says for this route (or at the client's `X-Latchkey-Bookmark`), and
 * its bookmark is sent back.
 */
export function requestContext(options: { clock: Clock; config: ConfigCache }): MiddlewareHandler<AppEnv> {
  return async function requestContext(c, next) {
    const deps = createDeps(c.env, {
      clock: options.clock,
      config: options.config,
      meta: {
        ip: parseIp(c.req.header("cf-connecting-ip")),
        userAgent: cleanUserAgent(c.req.header("user-agent")),
      },
      session: { start: sessionStartFor(c.req.method, c.req.path), bookmark: parseBookmark(c.req.header(BOOKMARK_HEADER)) },
      request: { origin: new URL(c.req.url).origin, waitUntil: waitUntilOf(c) },
    });
    c.set("deps", deps);
    await next();
    const bookmark = deps.replica.bookmark();
    if (bookmark !== null) editResponseHeaders(c, (headers) => headers.set(BOOKMARK_HEADER, bookmark));
  };
}
