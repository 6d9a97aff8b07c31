import type { MiddlewareHandler } from "hono";
import { editResponseHeaders } from "./response-headers";

/**
 * Hardening headers on every response, errors included. The CSP is for JSON: nothing may load
 * or run if a response is ever rendered as a document. Routes that serve HTML (the docs page)
 * or images set their own policy before this runs, and it is kept.
 */
export function securityHeaders(): MiddlewareHandler {
  return async function securityHeaders(c, next) {
    await next();
    editResponseHeaders(c, (headers) => {
      headers.set("X-Content-Type-Options", "nosniff");
      headers.set("Strict-Transport-Security", "max-age=63072000; includeSubDomains");
      headers.set("Referrer-Policy", "no-referrer");
      headers.set("X-Frame-Options", "DENY");
      if (!headers.has("Content-Security-Policy")) {
        headers.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
      }
    });
  };
}
