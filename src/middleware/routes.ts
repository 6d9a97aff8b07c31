/**
 * What the app's own router knows about its routes, for answers the router does not give itself:
 * which methods a path has (RFC 9110 §15.5.6: a 405 carries `Allow`) and which operations take a
 * JSON body, and whether they need one. Read from the registered routes (`app.routes`) and the OpenAPI registry, so a new
 * route is covered without listing it anywhere else.
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env";
import { AppError, problemResponse } from "../lib/errors";
import { ACCEPT_PATCH } from "./body";
import { isPreflight } from "./cors";

/** A route as Hono lists it in `app.routes`; middleware appears there with method "ALL". */
export interface RegisteredRoute {
  method: string;
  path: string;
}

/** An OpenAPI registry entry, as much of it as the table reads. */
export interface RegisteredDefinition {
  type: string;
  route?: { method: string; path: string; request?: { body?: { required?: boolean; content?: Record<string, unknown> } } };
}

export type JsonBodyRule = "required" | "optional" | "none";

export interface RouteTable {
  /** Whether `method` is one `path` answers: one test per request, where `allowed` tests every route. */
  answers(method: string, path: string): boolean;
  /** The methods `path` answers (HEAD wherever GET is, and OPTIONS), sorted; empty for an unknown path. */
  allowed(path: string): string[];
  /** The JSON body `method` on `path` declares: "required", "optional", or "none" (an operation without one). */
  jsonBody(method: string, path: string): JsonBodyRule;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A Hono path (`/me/sessions/:id`, `:id{[0-9]+}`, a trailing `*`) or an OpenAPI one (`{id}`) as a whole-path pattern. */
function pathPattern(path: string): string {
  const segments = path.split("/").map((segment) => {
    if (segment === "*") return ".*";
    const param = /^:[^{]+(?:\{(.+)\})?$/.exec(segment);
    if (param) return param[1] ? `(?:${param[1]})` : "[^/]+";
    if (/^\{[^}]+\}$/.test(segment)) return "[^/]+";
    return escapeRegExp(segment);
  });
  return `^${segments.join("/")}$`;
}

/** Builds the table once; call it after every route is registered (the middleware below builds it lazily). */
export function RouteTable(routes: readonly RegisteredRoute[], definitions: readonly RegisteredDefinition[]): RouteTable {
  const methods = new Map<string, { regex: RegExp; methods: Set<string> }>();
  for (const route of routes) {
    if (route.method === "ALL") continue;
    const source = pathPattern(route.path);
    let entry = methods.get(source);
    if (!entry) {
      entry = { regex: new RegExp(source), methods: new Set() };
      methods.set(source, entry);
    }
    entry.methods.add(route.method.toUpperCase());
    // Hono answers HEAD with the GET handler (the body dropped).
    if (route.method.toUpperCase() === "GET") entry.methods.add("HEAD");
  }
  // Per method, one regex of every path it answers.
  const byMethod = new Map<string, RegExp>();
  for (const method of new Set([...methods.values()].flatMap((entry) => [...entry.methods]))) {
    const sources = [...methods].filter(([, entry]) => entry.methods.has(method)).map(([source]) => `(?:${source})`);
    byMethod.set(method, new RegExp(sources.join("|")));
  }
  const withBody = definitions.flatMap((def) => {
    const body = def.type === "route" ? def.route?.request?.body : undefined;
    if (!def.route || !body?.content?.["application/json"]) return [];
    const rule: JsonBodyRule = body.required ? "required" : "optional";
    return [{ method: def.route.method.toUpperCase(), regex: new RegExp(pathPattern(def.route.path)), rule }];
  });
  return {
    answers(method, path) {
      return byMethod.get(method)?.test(path) ?? false;
    },
    allowed(path) {
      const found = new Set<string>();
      for (const entry of methods.values()) if (entry.regex.test(path)) for (const m of entry.methods) found.add(m);
      // Every known path answers OPTIONS (below), so a 405's Allow and OPTIONS list the same methods.
      if (found.size > 0) found.add("OPTIONS");
      return [...found].sort();
    },
    jsonBody(method, path) {
      const m = method.toUpperCase();
      return withBody.find((op) => op.method === m && op.regex.test(path))?.rule ?? "none";
    },
  };
}

/**
 * Answers a wrong method on a known path with a 405 problem and `Allow`, before any body handling,
 * so the client learns what the path takes rather than a 404 or a complaint about its body.
 * A CORS preflight is left to the CORS middleware; any other OPTIONS, with an `Origin` or not,
 * asks what the path allows (RFC 9110 §9.3.7): `204` with `Allow`. Unknown paths fall through to
 * the 404.
 */
export function methodNotAllowed(table: () => RouteTable): MiddlewareHandler<AppEnv> {
  return async function methodNotAllowed(c, next) {
    const method = c.req.method.toUpperCase();
    if (method === "OPTIONS") {
      const allowed = isPreflight(c.req.raw.headers) ? [] : table().allowed(c.req.path);
      if (allowed.length === 0) return next();
      const allow = allowed.join(", ");
      // A path that takes PATCH says in what format (RFC 5789 §3.1).
      return c.body(null, 204, allowed.includes("PATCH") ? { Allow: allow, "Accept-Patch": ACCEPT_PATCH } : { Allow: allow });
    }
    if (table().answers(method, c.req.path)) return next();
    const allowed = table().allowed(c.req.path);
    if (allowed.length === 0 || allowed.includes(method)) return next();
    const allow = allowed.join(", ");
    return problemResponse(c, new AppError("method_not_allowed", `${method} is not allowed here; this path answers ${allow}.`), {
      Allow: allow,
    });
  };
}
