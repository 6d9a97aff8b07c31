import type { Deps } from "./deps";
import type { Profile, User } from "./store";

export type { Deps } from "./deps";

declare global {
  interface Env {
    /** Optional: a libSQL / Turso database URL; when set, the stores use it instead of the `DB` binding. */
    LIBSQL_URL?: string;
    /** Secret: the libSQL / Turso auth token for `LIBSQL_URL`. */
    LIBSQL_AUTH_TOKEN?: string;
  }
}

export interface AppEnv {
  Bindings: Env;
  Variables: {
    deps: Deps;
    /** Set first by `requestId`: this request's id (X-Request-Id), in every log line and problem document. */
    requestId: string;
    /** Set by `problemResponse` on an error answer: the problem document's `code`, for the request's log line. */
    problemCode: string;
    /** Set by `requireUser`: the caller, loaded fresh from the database on this request. */
    user: User;
    /** Set by `requireUser({ withProfile: true })`: the caller's profile row, if it exists. */
    profile: Profile | null;
    /** Claims of the access token that authenticated this request; `sessionId` is its sign-in. */
    token: { jti: string; iat: number; sessionId: string };
  };
}
