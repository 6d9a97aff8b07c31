import type { Config } from "./config/config.definitions";
import type { Db } from "./db/client";
import type { Profile, User } from "./db/schema";
import type { RequestMeta } from "./features/activity/activity.record";
import type { Clock } from "./lib/clock";

/**
 * What every service may use, wired once per request by the context middleware. Services take
 * this (or a part of it) as plain input, never a Hono Context, so they can run without HTTP.
 */
export interface Deps {
  db: Db;
  clock: Clock;
  /** The effective hot configuration (KV, validated, cached per isolate for a few seconds). */
  config: () => Promise<Config>;
  /** Drops this isolate's cached config so the next `config()` reads KV (after an admin write). */
  invalidateConfig: () => void;
  env: Env;
  meta: RequestMeta;
}

export interface AppEnv {
  Bindings: Env;
  Variables: {
    deps: Deps;
    /** Set first by `requestId`: this request's id (X-Request-Id), in every log line and problem document. */
    requestId: string;
    /** Set by `requestId` on an error answer: the problem document's `code`, for the request's log line. */
    problemCode: string;
    /** Set by `requireUser`: the caller, loaded fresh from D1 on this request. */
    user: User;
    /** Set by `requireUser({ withProfile: true })`: the caller's profile row, if it exists. */
    profile: Profile | null;
    /** Claims of the access token that authenticated this request; `sessionId` is its sign-in. */
    token: { jti: string; iat: number; sessionId: string };
  };
}
