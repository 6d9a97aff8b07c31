import type { MiddlewareHandler } from "hono";
import { discardRest } from "../lib/drain";
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
 * drainingBodyLimit counts the bytes as they stream, so a chunked body without Content-Length
 * is cut off too. A route that takes another media type (avatar upload) is mounted without this.
 */
export function jsonBody(maxBytes = JSON_BODY_MAX_BYTES): MiddlewareHandler {
  const limit = drainingBodyLimit(maxBytes, () => new AppError("payload_too_large", `The body must be at most ${maxBytes} bytes.`));
  return async function jsonBody(c, next) {
    if (!hasBody(c.req.raw)) return next();
    const type = c.req.header("content-type")?.split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json") {
      throw new AppError("unsupported_media_type", "Send the body as application/json.");
    }
    return limit(c, next);
  };
}

/**
 * hono's bodyLimit, except that a chunked body over the limit is drained (bounded, see
 * lib/drain.ts) before the error is thrown, so the 413 leaves the connection reusable and the
 * next request on it — under `wrangler dev`, another client's — is not failed. hono's version
 * stops reading mid-body. A body with a Content-Length is judged by its header and left unread,
 * as hono does; an untouched body is drained by the runtime (wrangler dev) or the edge.
 */
export function drainingBodyLimit(maxBytes: number, tooLarge: () => Error): MiddlewareHandler {
  return async function drainingBodyLimit(c, next) {
    const { raw } = c.req;
    if (!raw.body) return next();
    const length = raw.headers.get("content-length");
    if (length !== null && !raw.headers.has("transfer-encoding")) {
      if (Number.parseInt(length, 10) > maxBytes) throw tooLarge();
      return next();
    }
    const reader = raw.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await discardRest(reader);
        throw tooLarge();
      }
      chunks.push(value);
    }
    const body = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      body.set(chunk, offset);
      offset += chunk.byteLength;
    }
    c.req.raw = new Request(raw, { body });
    return next();
  };
}
