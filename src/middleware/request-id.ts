/**
 * A request id for every request, so a client's report, a problem document and the log lines of
 * one request can be matched: a well-formed incoming `X-Request-Id` is kept (a proxy or the
 * client made one), else Cloudflare's `cf-ray` (which the dashboard and support already know),
 * else a random one. It is sent back in `X-Request-Id` on every response, errors, 404 and 405
 * included, and added to every problem document as `request_id`.
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env";
import { randomBytes, toHex } from "../lib/crypto";
import { editResponseHeaders } from "./response-headers";

export const REQUEST_ID_HEADER = "X-Request-Id";
/** Long enough for a UUID, a trace id or a cf-ray with its colo; short enough to be harmless in a log. */
export const REQUEST_ID_MAX = 128;
/** Characters that cannot forge a log line, split a header or need escaping in JSON. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]+$/;

/** Whether `value` may be used as a request id as it is. */
export function isValidRequestId(value: string | undefined | null): value is string {
  return !!value && value.length <= REQUEST_ID_MAX && REQUEST_ID_PATTERN.test(value);
}

/** The id for a request with these headers: a valid X-Request-Id, else a valid cf-ray, else 32 random hex characters. */
export function chooseRequestId(headers: Headers): string {
  const incoming = headers.get(REQUEST_ID_HEADER);
  if (isValidRequestId(incoming)) return incoming;
  const ray = headers.get("cf-ray");
  if (isValidRequestId(ray)) return ray;
  return toHex(randomBytes(16));
}

/**
 * Sets `requestId` on the context, for the log lines and the problem documents (lib/errors.ts
 * puts it in every one it makes), and sends it back in the header of every response.
 */
export function requestId(): MiddlewareHandler<AppEnv> {
  return async function requestId(c, next) {
    const id = chooseRequestId(c.req.raw.headers);
    c.set("requestId", id);
    await next();
    editResponseHeaders(c, (headers) => headers.set(REQUEST_ID_HEADER, id));
  };
}
