/**
 * Builds the Latchkey app: middleware, the error model, and every feature's routes. `createApp`
 * takes the clock (and config cache timing) so tests drive the same app with a movable clock.
 */
import { ConfigCache } from "./config/config.service";
import { activityRoutes } from "./features/activity/activity.routes";
import { adminRoutes } from "./features/admin/admin.routes";
import { authRoutes } from "./features/auth/auth.routes";
import { exportRoutes } from "./features/export/export.routes";
import { DEV_PATH_PREFIX, devInboxRoutes, devOnly } from "./features/mail/dev-inbox.routes";
import { meRoutes } from "./features/me/me.routes";
import { metaRoutes } from "./features/meta/meta.routes";
import { problemRoutes } from "./features/meta/problems";
import { readyRoutes } from "./features/meta/ready";
import { otpRoutes } from "./features/otp/otp.routes";
import { profilesRoutes } from "./features/profiles/profiles.routes";
import { sessionsRoutes } from "./features/sessions/sessions.routes";
import { statusesRoutes } from "./features/statuses/statuses.routes";
import { type Clock, systemClock } from "./lib/clock";
import { AppError, problemResponse } from "./lib/errors";
import { createRouter } from "./lib/openapi";
import { API_BASE } from "./lib/paths";
import { jsonBody } from "./middleware/body";
import { requestContext } from "./middleware/context";
import { crossOrigin } from "./middleware/cors";
import { answerFor } from "./middleware/problems";
import { requireSetup } from "./middleware/readiness";
import { requestId } from "./middleware/request-id";
import { requestLog } from "./middleware/request-log";
import { methodNotAllowed, RouteTable } from "./middleware/routes";
import { securityHeaders } from "./middleware/security-headers";
import { webRoutes } from "./web/web.routes";

export { API_BASE } from "./lib/paths";

/** Routes whose request body is not JSON (they enforce their own type and size limits). */
const NON_JSON_ROUTES = new Set<string>([`${API_BASE}/me/avatar`]);

export function createApp(options: { clock?: Clock; configCacheMs?: number } = {}) {
  const clock = options.clock ?? systemClock;
  const config = ConfigCache({ clock, ttlMs: options.configCacheMs });
  const app = createRouter();
  // Built on first use, when every route below is registered.
  let table: RouteTable | undefined;
  const routeTable = () => {
    table ??= RouteTable(app.routes, app.openAPIRegistry.definitions);
    return table;
  };
  const json = jsonBody({ rule: (c) => routeTable().jsonBody(c.req.method, c.req.path) });

  // Outermost: the log line sees the final response, and every response gets its request id.
  app.use(requestLog({ clock }));
  app.use(requestId());
  app.use(securityHeaders());
  app.use(crossOrigin());
  app.use(requestContext({ clock, config }));
  app.use(`${DEV_PATH_PREFIX}/*`, devOnly());
  app.use(methodNotAllowed(routeTable));
  app.use(`${API_BASE}/*`, requireSetup());
  app.use("/.well-known/*", requireSetup());
  app.use("/health", requireSetup({ database: true }));
  // Readiness is liveness and more: never ready while the API answers 503 for want of a secret
  // (its D1 check covers the migrations, and names a database that does not answer as failed).
  app.use("/health/ready", requireSetup());
  app.use(`${API_BASE}/*`, (c, next) => (NON_JSON_ROUTES.has(c.req.path) ? next() : json(c, next)));

  app.onError((error, c) => problemResponse(c, answerFor(c, error)));
  app.notFound((c) => problemResponse(c, new AppError("not_found", "No such route.")));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", { type: "http", scheme: "bearer", bearerFormat: "JWT" });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Latchkey",
      version: "1.0.0",
      description: "Accounts, sign-in and tokens at the edge. Errors are RFC 9457 problem documents (application/problem+json).",
    },
  });

  const routes = app
    .route("/", metaRoutes)
    .route("/", problemRoutes)
    .route("/", readyRoutes)
    .route(API_BASE, authRoutes)
    .route(API_BASE, otpRoutes)
    .route(API_BASE, meRoutes)
    .route(API_BASE, profilesRoutes)
    .route(API_BASE, adminRoutes)
    .route(API_BASE, statusesRoutes)
    .route(API_BASE, activityRoutes)
    .route(API_BASE, sessionsRoutes)
    .route(API_BASE, exportRoutes)
    .route("/", devInboxRoutes);
  // The website: HTML pages over the same services (not part of the API, nor of its OpenAPI document).
  app.route("/", webRoutes());
  return routes;
}

/** The app's type, for `hc<AppType>()` from `hono/client`. */
export type AppType = ReturnType<typeof createApp>;
