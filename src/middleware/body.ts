import type { Context, MiddlewareHandler } from "hono";
import { assertNoContentCoding } from "../lib/content-coding";
import { readAtMost } from "../lib/drain";
import { AppError } from "../lib/errors";
import type { JsonBodyRule } from "./routes";

/** JSON bodies are small; this bounds parsing and hashing work before any handler runs. */
export const JSON_BODY_MAX_BYTES = 64 * 1024;

/** The patch document format every PATCH here takes (RFC 5789 §3.1): a JSON object of the fields to change. */
export const ACCEPT_PATCH = "application/json";

/**
 * Whether the request carries any body bytes, and the request to read them from afterwards.
 * Content-Length decides when it is there without Transfer-Encoding (RFC 9112 §6.3). Otherwise
 * only the stream can tell: `wrangler dev` and browsers' fetch hand a body-less POST or DELETE
 * to the worker as an empty stream without Content-Length, and a chunked body may be nothing but
 * its last chunk (RFC 9112 §7.1). So the stream is read up to its first non-empty chunk, which is
 * put back in front of the rest for whoever reads the body next.
 */
export async function peekBody(req: Request): Promise<{ present: boolean; request: Request }> {
  if (req.method === "GET" || req.method === "HEAD" || req.body === null) return { present: false, request: req };
  const length = req.headers.get("content-length");
  if (length !== null && !req.headers.has("transfer-encoding")) return { present: length.trim() !== "0", request: req };
  const reader = req.body.getReader();
  let first: Uint8Array | undefined;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (value && value.byteLength > 0) {
      first = value;
      break;
    }
  }
  if (!first) return { present: false, request: new Request(req, { body: null }) };
  const head = first;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(head);
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return { present: true, request: new Request(req, { body }) };
}

/** The 400 for an operation that declares a body and got no bytes. */
function bodyRequired(): AppError {
  const message = "is required: send the request's fields as a JSON object";
  return new AppError("validation_failed", `body: ${message}`, { errors: [{ path: "body", message }] });
}

/**
 * JSON text is UTF-8 (RFC 8259 §8.1): `fatal`, so bytes that are not are refused rather than read
 * as U+FFFD and stored in place of the client's characters. A leading byte order mark is dropped
 * (`ignoreBOM: false`), as `Request.text()` does.
 */
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * For JSON routes, by the body their operation declares (`rule`): none — whatever was sent is
 * never read (RFC 9110 gives a body of DELETE, or of a POST that takes none, no meaning), so it
 * costs nothing and earns no 413 or 415 the operation does not document; otherwise a request with
 * no body bytes needs no content type, unless the body is required, which answers 400 naming it.
 * A body must be `application/json` without a content coding (415 otherwise, see
 * lib/content-coding.ts), at most 64 KiB (413; `readWithin` counts the bytes as they stream, so a
 * chunked body without Content-Length is cut off too) and UTF-8 (400 `malformed_json`). A route
 * that takes another media type (avatar upload) is mounted without this.
 */
export function jsonBody(options: { maxBytes?: number; rule?: (c: Context) => JsonBodyRule } = {}): MiddlewareHandler {
  const maxBytes = options.maxBytes ?? JSON_BODY_MAX_BYTES;
  const tooLarge = () => new AppError("payload_too_large", `The body must be at most ${maxBytes} bytes.`);
  return async function jsonBody(c, next) {
    // Reads (most requests) carry no body: no route lookup for them.
    if (c.req.method === "GET" || c.req.method === "HEAD") return next();
    const rule = options.rule?.(c) ?? "optional";
    if (rule === "none") return next();
    const { present, request } = await peekBody(c.req.raw);
    c.req.raw = request;
    if (!present) {
      if (rule === "required") throw bodyRequired();
      return next();
    }
    const type = c.req.header("content-type")?.split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json") {
      // A PATCH refused for its patch format names the one it takes (RFC 5789 §2.2).
      const headers = c.req.method === "PATCH" ? { "Accept-Patch": ACCEPT_PATCH } : undefined;
      throw new AppError("unsupported_media_type", "Send the body as application/json.", { headers });
    }
    assertNoContentCoding(c.req.raw.headers);
    const bytes = await readWithin(c.req.raw, maxBytes, tooLarge);
    let text: string;
    try {
      text = UTF8.decode(bytes);
    } catch {
      throw new AppError("malformed_json", "The body is not UTF-8, which JSON text must be (RFC 8259 §8.1).");
    }
    // hono's `c.req.json()`, which the route's validator calls, parses this cached text: the
    // bytes are decoded once, by the strict decoder, and not copied into another Request.
    (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    return next();
  };
}

/**
 * The body's bytes, like hono's bodyLimit, except that a chunked body over the limit is drained
 * (bounded, see lib/drain.ts) before the error is thrown, so the 413 leaves the connection
 * reusable and the next request on it — under `wrangler dev`, another client's — is not failed.
 * hono's version stops reading mid-body. A body whose Content-Length is over the limit is refused
 * by its header and left unread, as hono does; an untouched body is drained by the runtime
 * (wrangler dev) or the edge.
 *
 * Every body within the limit is read whole here, before the route's middleware authenticates
 * the caller. Otherwise a client sending its body slowly could hold a request authorised by a
 * live sign-in until after that sign-in ended (disabled, reset, logged out) and have it land then.
 */
async function readWithin(raw: Request, maxBytes: number, tooLarge: () => Error): Promise<ArrayBuffer | Uint8Array> {
  if (!raw.body) return new Uint8Array(0);
  const length = raw.headers.get("content-length");
  if (length !== null && !raw.headers.has("transfer-encoding")) {
    if (Number.parseInt(length, 10) > maxBytes) throw tooLarge();
    return raw.arrayBuffer();
  }
  return readAtMost(raw.body, maxBytes, tooLarge);
}
