import type { Deps } from "./deps";
import type { Profile, User } from "./store";

export type { Deps } from "./deps";

export interface AppEnv {
  Bindings: Env;
  Variables: {
    deps: Deps;
    /** Set by `requireUser`: the caller, loaded fresh from the database on this request. */
    user: User;
    /** Set by `requireUser({ withProfile: true })`: the caller's profile row, if it exists. */
    profile: Profile | null;
    /** Claims of the access token that authenticated this request; `sessionId` is its sign-in. */
    token: { jti: string; iat: number; sessionId: string };
  };
}
