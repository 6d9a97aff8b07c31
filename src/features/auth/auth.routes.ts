import { createRoute, z } from "@hono/zod-openapi";

import { bearerAuth, createdContent, createRouter, jsonBody, jsonContent, problems } from "../../lib/openapi";
import { API_BASE } from "../../lib/paths";
import { requireUser } from "../../middleware/auth";
import { LoginSchema, RefreshSchema, RegisterSchema, TokenResponseSchema, UserSchema } from "./auth.schemas";
import { login, register, userView } from "./auth.service";
import { logout, logoutAll, rotateRefreshToken } from "./tokens.service";

const tags = ["auth"];
/** Token responses must never be stored by a cache (RFC 6749 §5.1). */
const NO_STORE = { "Cache-Control": "no-store", Pragma: "no-cache" };
/** Where an account's owner reads it (me.routes.ts): a new account's `Location`. */
const ME_PATH = `${API_BASE}/me`;

export const authRoutes = createRouter()
  .openapi(
    createRoute({
      method: "post",
      path: "/auth/register",
      tags,
      summary: "Create an account",
      description: "When KV `require_email_verification` is true the account starts unverified and an activation code is mailed.",
      request: { body: jsonBody(RegisterSchema) },
      responses: {
        201: createdContent(
          z.object({ user: UserSchema }),
          "The new account",
          "`/api/v1/me`: where the account's owner reads it, once signed in (an unverified account after verifying its address)",
        ),
        ...problems(400, 409, 413, 415, 429),
      },
    }),
    async (c) => {
      const user = await register(c.var.deps, c.req.valid("json"));
      // The account is readable only by its owner, and only at /me (GET /me answers this body's
      // fields and more): no URL names it by id for anyone but staff, and the public profile is
      // another resource, hidden until the address is verified. So /me is what Location can
      // honestly name; without one a client would take /auth/register for the account's URL.
      return c.json({ user: userView(user) }, 201, { Location: ME_PATH });
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/auth/login",
      tags,
      summary: "Sign in with email or username and password",
      request: { body: jsonBody(LoginSchema) },
      responses: {
        200: jsonContent(TokenResponseSchema, "A new token pair"),
        ...problems(400, 401, 403, 413, 415, 429),
      },
    }),
    async (c) => c.json(await login(c.var.deps, c.req.valid("json")), 200, NO_STORE),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/auth/refresh",
      tags,
      summary: "Rotate a refresh token",
      description: "The presented token stops working. Presenting an already-rotated token revokes its whole sign-in.",
      request: { body: jsonBody(RefreshSchema) },
      responses: {
        200: jsonContent(TokenResponseSchema, "A new token pair"),
        ...problems(400, 401, 413, 415, 429),
      },
    }),
    async (c) => c.json(await rotateRefreshToken(c.var.deps, c.req.valid("json").refresh_token), 200, NO_STORE),
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/auth/logout",
      tags,
      summary: "Sign out one session",
      description: "Revokes the refresh token and its family. Unknown or already revoked tokens also answer 204.",
      request: { body: jsonBody(RefreshSchema) },
      responses: { 204: { description: "Signed out" }, ...problems(400, 413, 415) },
    }),
    async (c) => {
      await logout(c.var.deps, c.req.valid("json").refresh_token);
      return c.body(null, 204);
    },
  )
  .openapi(
    createRoute({
      method: "post",
      path: "/auth/logout-all",
      tags,
      summary: "Sign out everywhere",
      description: "Revokes every refresh token of the user and every access token issued so far.",
      security: bearerAuth,
      middleware: [requireUser()],
      responses: { 204: { description: "Signed out everywhere" }, ...problems(401) },
    }),
    async (c) => {
      await logoutAll(c.var.deps, c.var.user);
      return c.body(null, 204);
    },
  );
