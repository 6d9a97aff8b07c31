/**
 * The composition root: `createDeps` turns the worker's bindings into the narrow dependencies
 * services take — the stores, the clock, the config reader, the signing-key settings, the avatar
 * bucket and its edge cache, the mail outbox and the secrets. It is the one place that reads `env` for the fetch,
 * queue and scheduled handlers alike; services never see `env`.
 */
import type { Config } from "./config/config.definitions";
import { ConfigCache } from "./config/config.service";
import type { AccessTokenSettings } from "./features/auth/access-tokens";
import { type HasherName, hasherFromEnv } from "./features/auth/password-hash";
import type { MailMessage } from "./features/mail/mail.messages";
import { type AvatarCache, EdgeAvatarCache, NoAvatarCache } from "./features/profiles/avatar.cache";
import type { Clock } from "./lib/clock";
import {
  D1Db,
  D1Session,
  D1SetupCheck,
  defineStores,
  LibsqlDatabase,
  LibsqlSetupCheck,
  NoSession,
  type ReplicaSession,
  type RequestMeta,
  type SessionStart,
  type SetupCheck,
  type Stores,
} from "./store";

/** Where mails go: the `latchkey-mail` queue in production (one schema for producer and consumer). */
export interface MailOutbox {
  send(message: MailMessage): Promise<void>;
}

/**
 * What every service may use. Services take this (or a `Pick` of it) as plain input, never a
 * Hono Context or `env`, so they run without HTTP and against any store implementation.
 */
export interface Deps extends Stores {
  clock: Clock;
  /** The effective hot configuration (KV, validated, cached per isolate for a few seconds). */
  config: () => Promise<Config>;
  /** Drops this isolate's cached config so the next `config()` reads KV (after an admin write). */
  invalidateConfig: () => void;
  /** The raw hot-configuration namespace, for the admin API that edits it (and where the daily avatar sweep resumes). */
  configKv: KVNamespace;
  /** Access-token signing and verification: the JWK set secret, issuer and audience. */
  keys: AccessTokenSettings;
  /** Avatar images (R2). */
  avatars: R2Bucket;
  /** Copies of current avatars in this data center's edge cache (none outside a request). */
  avatarCache: AvatarCache;
  outbox: MailOutbox;
  secrets: {
    /** HMAC key of one-time codes; also signs pagination cursors (under its own label). */
    otpSecret: string;
  };
  /** The hash new passwords get (`PASSWORD_HASHER`). */
  passwordHasher: HasherName;
  /** The caller's address and user agent (both null outside a request). */
  meta: RequestMeta;
  /** The request's read-replication session: its bookmark goes back to the client (null: none). */
  replica: Pick<ReplicaSession, "bookmark">;
  /**
   * The stores on the database itself, outside the request's session, where a read sees every
   * write committed so far (D1's primary; a session may read a replica that has only its own):
   * for the rare read that must see other requests' newest writes. Under libSQL, the same database.
   */
  primary: Stores;
  /** Whether the database is migrated (for the readiness check). */
  setup: SetupCheck;
}

const NO_REQUEST: RequestMeta = { ip: null, userAgent: null };

/**
 * The database the stores use: libSQL / Turso when `LIBSQL_URL` is set (with the secret
 * `LIBSQL_AUTH_TOKEN`), otherwise the `DB` binding (D1) — in a D1 session when the request says
 * where it starts (see src/store/replica.ts), on the binding itself for background jobs.
 */
export function databaseFor(env: Env, session?: { start: SessionStart; bookmark: string | null }): ReplicaSession {
  if (env.LIBSQL_URL) return NoSession(LibsqlDatabase(env.LIBSQL_URL, env.LIBSQL_AUTH_TOKEN));
  return session ? D1Session(env.DB, session.start, session.bookmark) : NoSession(D1Db(env.DB));
}

/** What a request adds: where its edge-cache copies live, and how to finish work after answering. */
export interface RequestScope {
  /** The request's origin (`https://host`): edge-cache keys are made under it. */
  origin: string;
  /** The invocation's `ctx.waitUntil`, when there is one (not under `app.request` in tests). */
  waitUntil?: (task: Promise<unknown>) => void;
}

/** The edge cache for avatars: the Cache API in a request, nothing elsewhere (or where it is missing). */
function avatarCacheFor(request: RequestScope | undefined): AvatarCache {
  if (!request || typeof caches === "undefined") return NoAvatarCache;
  return EdgeAvatarCache({ cache: caches.default, origin: request.origin, waitUntil: request.waitUntil });
}

/**
 * Builds `Deps` from the bindings. `config` is the caller's cache (per isolate for fetch, fresh for
 * cron); `session` is where a request's reads start and `request` what else a request brings
 * (both absent for background jobs).
 */
export function createDeps(
  env: Env,
  options: {
    clock: Clock;
    config: ConfigCache;
    meta?: RequestMeta;
    session?: { start: SessionStart; bookmark: string | null };
    request?: RequestScope;
  },
): Deps {
  const replica = databaseFor(env, options.session);
  let primary: Stores | undefined;
  return defineStores<Omit<Deps, keyof Stores>>(
    {
      replica,
      // Made on first use: most requests never read outside their session.
      get primary() {
        primary ??= defineStores({}, () => databaseFor(env).db);
        return primary;
      },
      setup: env.LIBSQL_URL ? LibsqlSetupCheck(LibsqlDatabase(env.LIBSQL_URL, env.LIBSQL_AUTH_TOKEN)) : D1SetupCheck(env.DB),
      clock: options.clock,
      config: () => options.config.get(env.CONFIG),
      invalidateConfig: () => options.config.invalidate(),
      configKv: env.CONFIG,
      keys: { keys: env.JWT_KEYS, issuer: env.JWT_ISSUER, audience: env.JWT_AUDIENCE },
      avatars: env.AVATARS,
      avatarCache: avatarCacheFor(options.request),
      outbox: {
        async send(message) {
          await env.MAIL_QUEUE.send(message, { contentType: "json" });
        },
      },
      secrets: { otpSecret: env.OTP_SECRET },
      passwordHasher: hasherFromEnv(env.PASSWORD_HASHER),
      meta: options.meta ?? NO_REQUEST,
    },
    () => replica.db,
  );
}

/** For the queue consumer and the cron job: no request, and a config read fresh on each invocation. */
export function createBackgroundDeps(env: Env, clock: Clock): Deps {
  return createDeps(env, { clock, config: ConfigCache({ clock, ttlMs: 0 }) });
}
