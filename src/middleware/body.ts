import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { AppError } from "../lib/errors";

/** JSON bodies are small; this bounds parsing and hashing work before any handler runs. */
export const JSON_BODY_MAX_BYTES = 64 * 1024;

function hasBody(req: Request): boolean {
  if (req.method === "GET" || req.method === "HEAD" || req.method === "OPTIONS") return false;
  const length = req.headers.get("content-length");
  return req.headers.has("transfer-encoding") || (length !== null && length !== "0") || req.body !== null;
}

/**
 * For JSON routes: a body must be `application/json` (415 otherwise) and at most 64 KiB.
 * hono's bodyLimit counts the bytes as they stream, so a chunked body without Content-Length
 * is cut off too. A route that takes another media type (avatar upload) is mounted without this.
 */
export function jsonBody(maxBytes = JSON_BODY_MAX_BYTES): MiddlewareHandler {
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new AppError("payload_too_large", `The body must be at most ${maxBytes} bytes.`);
    },
  });
  return async function jsonBody(c, next) {
    if (!hasBody(c.req.raw)) return next();
    const type = c.req.header("content-type")?.split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json") {
      throw new AppError("unsupported_media_type", "Send the body as application/json.");
    }
    return limit(c, next);
  };
}
