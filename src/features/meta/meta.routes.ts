import { createRoute, z } from "@hono/zod-openapi";
import { createRouter, jsonContent, problems } from "../../lib/openapi";
import { getSigningKeys, JWKS_MAX_AGE_SECONDS } from "../auth/access-tokens";

/**
 * The docs page. Its scripts and styles are Swagger UI's, served as Workers static assets from
 * public/docs-assets (copied from node_modules at install), so it works offline and keeps the
 * worker bundle small. Hence a CSP of 'self' only.
 */
const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Latchkey API</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/docs-assets/vendor/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs-assets/vendor/swagger-ui-bundle.js"></script>
<script src="/docs-assets/init.js"></script>
</body>
</html>`;
const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * The root: a plain page pointing a visitor (or a newcomer who opened localhost:8787) at the
 * reference, instead of a JSON 404. No script and no style, so its CSP allows nothing but its
 * own-origin favicon.
 */
const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Latchkey</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
</head>
<body>
<h1>Latchkey</h1>
<p>Accounts, sign-in and tokens. The API lives under <code>/api/v1</code>.</p>
<ul>
<li><a href="/docs">API reference</a> (interactive)</li>
<li><a href="/openapi.json">OpenAPI document</a> (<code>/openapi.json</code>)</li>
<li><a href="/problems">Problem types</a>: what each error's <code>type</code> means, and what to do about it</li>
<li><a href="/.well-known/jwks.json">Public signing keys</a> (<code>/.well-known/jwks.json</code>)</li>
<li><a href="/health">Health</a> (<code>/health</code>)</li>
</ul>
</body>
</html>`;
/** For pages without script or style (this one, the problem types): nothing loads but the own-origin favicon. */
export const PLAIN_PAGE_CSP = "default-src 'none'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const JwksSchema = z
  .object({
    keys: z.array(z.object({ kty: z.string(), crv: z.string(), x: z.string(), kid: z.string(), alg: z.string(), use: z.string() })),
  })
  .openapi("JWKS");

export const metaRoutes = createRouter()
  .openapi(
    createRoute({
      method: "get",
      path: "/health",
      tags: ["meta"],
      summary: "Liveness and setup",
      description: "503 while a secret (JWT_KEYS, OTP_SECRET) is missing or malformed or the D1 migrations are not applied.",
      responses: { 200: jsonContent(z.object({ status: z.literal("ok") }), "The worker is up and set up"), ...problems() },
    }),
    (c) => c.json({ status: "ok" as const }, 200),
  )
  .openapi(
    createRoute({
      method: "get",
      path: "/.well-known/jwks.json",
      tags: ["meta"],
      summary: "Public keys that verify access tokens",
      responses: { 200: jsonContent(JwksSchema, "JWK set (RFC 7517)"), ...problems() },
    }),
    async (c) => {
      const { publicJwks } = await getSigningKeys(c.env.JWT_KEYS);
      return c.json(publicJwks as z.infer<typeof JwksSchema>, 200, { "Cache-Control": `public, max-age=${JWKS_MAX_AGE_SECONDS}` });
    },
  )
  .get("/", (c) => c.html(INDEX_HTML, 200, { "Content-Security-Policy": PLAIN_PAGE_CSP }))
  .get("/docs", (c) => c.html(DOCS_HTML, 200, { "Content-Security-Policy": DOCS_CSP }));
