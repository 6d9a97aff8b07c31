/**
 * The exact floors (issue 14): for each database endpoint, the statements Latchkey must run —
 * the same SQL text, the same round trips, the same D1 session the replica rule gives the route
 * — and the cryptography it cannot skip (JWT check or signature, token hash, password check,
 * sealed cursor, the avatar's edge-cache miss and put), with the rows answered as they come. What the endpoint costs above its
 * exact floor is only router, middleware, validation and mapping; index.ts keeps the minimal
 * floors (the least any such endpoint could do) as a second, informational column.
 *
 * The SQL here is what the store's prepared statements produce (test/features/query-budget.test.ts
 * pins the statements and round trips per endpoint, and the lists' text against these): a change
 * there belongs here too.
 */
import { type CryptoKey, jwtVerify } from "jose";
import { checkPassword } from "../../src/features/auth/password-hash";
import { encodeCursor, type ListName } from "../../src/lib/pagination";

export interface ExactEnv {
  DB: D1Database;
  AVATARS: R2Bucket;
  JWT_ISSUER: string;
  JWT_AUDIENCE: string;
  OTP_SECRET: string;
}

export interface Signer {
  verifyKey(): Promise<CryptoKey>;
  sign(sub: string, sid: string, nowMs: number): Promise<string>;
  randomToken(bytes: number): string;
  sha256Hex(text: string): Promise<string>;
}

const PAGE = 20;
const ACCESS_TTL_S = 30;
const REFRESH_TTL_MS = 30 * 24 * 3600 * 1000;
const MINUTE = 60_000;
const json = (body: unknown, status = 200) => Response.json(body, { status });

const HIT = `insert into "rate_limits" ("key", "count", "reset_at") values (?, ?, ?) on conflict ("rate_limits"."key") do update set "count" = CASE WHEN "rate_limits"."reset_at" <= ? THEN 1 ELSE "rate_limits"."count" + 1 END, "reset_at" = CASE WHEN "rate_limits"."reset_at" <= ? THEN ? ELSE "rate_limits"."reset_at" END returning "count", "reset_at"`;
const IDENTIFIER_HIT = `insert into "rate_limits" ("key", "count", "reset_at") SELECT ?, 1, ? WHERE COALESCE((SELECT "rate_limits"."count" FROM "rate_limits" WHERE "rate_limits"."key" = ? AND "rate_limits"."reset_at" > ?), 0) <= ? on conflict ("rate_limits"."key") do update set "count" = CASE WHEN "rate_limits"."reset_at" <= ? THEN 1 ELSE "rate_limits"."count" + 1 END, "reset_at" = CASE WHEN "rate_limits"."reset_at" <= ? THEN ? ELSE "rate_limits"."reset_at" END returning "count", "reset_at"`;
const USER_COLUMNS = `"users"."id", "users"."email", "users"."pending_email", "users"."username", "users"."password_hash", "users"."is_active", "users"."is_staff", "users"."email_verified", "users"."tokens_valid_after", "users"."created_at", "users"."updated_at"`;
const TOKEN_COLUMNS = `"id", "user_id", "family_id", "family_created_at", "parent_id", "token_hash", "created_at", "expires_at", "revoked_at", "revoked_reason", "user_agent", "ip"`;
const ME = `select ${USER_COLUMNS}, EXISTS (SELECT 1 FROM "refresh_tokens" WHERE "refresh_tokens"."family_id" = ? AND "refresh_tokens"."user_id" = ? AND "refresh_tokens"."revoked_at" IS NULL) as "session_live", "profiles"."user_id", "profiles"."name", "profiles"."surname", "profiles"."age", "profiles"."phone_number", "profiles"."profession", "profiles"."about_me", "profiles"."avatar_key", "profiles"."avatar_content_type", "profiles"."avatar_etag", "profiles"."updated_at" from "users" left join "profiles" on "profiles"."user_id" = "users"."id" where "users"."id" = ? limit ?`;
const TOKEN_BY_HASH = `select ${TOKEN_COLUMNS.replace(/"(\w+)"/g, '"refresh_tokens"."$1"')}, "users"."is_active" from "refresh_tokens" inner join "users" on "users"."id" = "refresh_tokens"."user_id" where "refresh_tokens"."token_hash" = ? limit ?`;
const INSERT_WHILE_PARENT_LIVE = `insert into "refresh_tokens" (${TOKEN_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM "refresh_tokens" WHERE ("refresh_tokens"."id" = ? and "refresh_tokens"."revoked_at" is null))`;
const REVOKE_ROTATED = `update "refresh_tokens" set "revoked_at" = ?, "revoked_reason" = 'rotated' where ("refresh_tokens"."id" = ? and "refresh_tokens"."revoked_at" is null) returning "id"`;
const USER_BY_EMAIL = `select ${USER_COLUMNS.replace(/"users"\./g, "")} from "users" where "users"."email" = ? limit ?`;
const INSERT_WHILE_ACCOUNT_UNCHANGED = `insert into "refresh_tokens" (${TOKEN_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM "users" WHERE ("users"."id" = ? and "users"."password_hash" = ? and "users"."is_active" = ? and "users"."tokens_valid_after" = ?))`;
const IF_TOKEN_WRITTEN = `EXISTS (SELECT 1 FROM "refresh_tokens" WHERE "refresh_tokens"."id" = ?)`;
export const CLEAR_COUNTER_IF_TOKEN = `delete from "rate_limits" where ("rate_limits"."key" = ? and ${IF_TOKEN_WRITTEN})`;
export const REFUND_HIT_IF_TOKEN = `update "rate_limits" set "count" = "rate_limits"."count" - 1 where ("rate_limits"."key" = ? and "rate_limits"."count" > ? and ${IF_TOKEN_WRITTEN})`;
const INSERT_ACTIVITY_IF_TOKEN = `insert into "activity" ("id", "user_id", "type", "created_at", "ip", "user_agent", "details") SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM "refresh_tokens" WHERE "refresh_tokens"."id" = ?)`;
export const DIRECTORY = `select "users"."id", "users"."username", "users"."created_at", "profiles"."name", "profiles"."surname", "profiles"."profession", "profiles"."about_me", "profiles"."avatar_key" from "users" left join "profiles" on "profiles"."user_id" = "users"."id" where ("users"."email_verified" = ? and "users"."is_active" = ?) order by "users"."created_at" asc, "users"."id" asc limit ?`;
export const TIMELINE = `select "statuses"."id", "statuses"."user_id", "users"."username", "statuses"."content", "statuses"."created_at", "statuses"."updated_at" from "statuses" inner join "users" on "users"."id" = "statuses"."user_id" where (("users"."email_verified" = ? and "users"."is_active" = ?) and "statuses"."author_public" = ?) order by "statuses"."created_at" desc, "statuses"."id" desc limit ?`;
const PUBLIC_AVATAR = `select "profiles"."avatar_key", "profiles"."avatar_etag", "profiles"."avatar_content_type" from "users" inner join "profiles" on "profiles"."user_id" = "users"."id" where ("users"."id" = ? and ("users"."email_verified" = ? and "users"."is_active" = ?)) limit ?`;

/** The request's D1 session, started where the replica rule starts the route (src/store/replica.ts). */
const session = (env: ExactEnv, start: "first-primary" | "first-unconstrained") => env.DB.withSession(start);
const ip = (request: Request) => request.headers.get("cf-connecting-ip") ?? "";

/** A new refresh token's columns, in TOKEN_COLUMNS order. */
async function tokenColumns(
  request: Request,
  signer: Signer,
  t: { userId: string; familyId: string; familyCreatedAt: number; parentId: string | null; token: string; now: number },
) {
  const hash = await signer.sha256Hex(t.token);
  return [
    signer.randomToken(16),
    t.userId,
    t.familyId,
    t.familyCreatedAt,
    t.parentId,
    hash,
    t.now,
    t.now + REFRESH_TTL_MS,
    null,
    null,
    request.headers.get("user-agent"),
    ip(request),
  ];
}

async function me(request: Request, env: ExactEnv, signer: Signer): Promise<Response> {
  const token = (request.headers.get("authorization") ?? "").slice("Bearer ".length);
  let sub: string;
  let sid: string;
  try {
    const { payload } = await jwtVerify(token, await signer.verifyKey(), {
      algorithms: ["EdDSA"],
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE,
      typ: "at+jwt",
    });
    sub = String(payload.sub);
    sid = String(payload.sid);
  } catch {
    return json({ error: "unauthorized" }, 401);
  }
  const row = await session(env, "first-unconstrained").prepare(ME).bind(sid, sub, sub, 1).first<{ session_live: number }>();
  return row?.session_live ? json(row) : json({ error: "unauthorized" }, 401);
}

async function refresh(request: Request, env: ExactEnv, signer: Signer): Promise<Response> {
  const { refresh_token } = (await request.json()) as { refresh_token: string };
  const now = Date.now();
  const db = session(env, "first-primary");
  const [, found] = await db.batch<{ id: string; user_id: string; family_id: string; family_created_at: number }>([
    db.prepare(HIT).bind(`refreshPerIp:${ip(request)}`, 1, now + MINUTE, now, now, now + MINUTE),
    db.prepare(TOKEN_BY_HASH).bind(await signer.sha256Hex(refresh_token), 1),
  ]);
  const row = found?.results[0];
  if (!row) return json({ error: "invalid_refresh_token" }, 401);
  const next = signer.randomToken(32);
  const [, revoked] = await db.batch([
    db.prepare(INSERT_WHILE_PARENT_LIVE).bind(
      ...(await tokenColumns(request, signer, {
        userId: row.user_id,
        familyId: row.family_id,
        familyCreatedAt: row.family_created_at,
        parentId: row.id,
        token: next,
        now,
      })),
      row.id,
    ),
    db.prepare(REVOKE_ROTATED).bind(now, row.id),
  ]);
  if (revoked?.results.length !== 1) return json({ error: "invalid_refresh_token" }, 401);
  const access = await signer.sign(row.user_id, row.family_id, now);
  return json({ access_token: access, token_type: "Bearer", expires_in: ACCESS_TTL_S, refresh_token: next });
}

async function login(request: Request, env: ExactEnv, signer: Signer): Promise<Response> {
  const { email, password } = (await request.json()) as { email: string; password: string };
  const now = Date.now();
  const window = now + 15 * MINUTE;
  const db = session(env, "first-primary");
  const [users] = await db.batch<{ id: string; password_hash: string; tokens_valid_after: number }>([
    db.prepare(USER_BY_EMAIL).bind(email, 1),
    db.prepare(HIT).bind(`loginFailuresPerIp:${ip(request)}`, 1, window, now, now, window),
    db
      .prepare(IDENTIFIER_HIT)
      .bind(`loginFailuresPerIdentifier:email:${email}`, window, `loginFailuresPerIp:${ip(request)}`, now, 50, now, now, window),
  ]);
  const user = users?.results[0] ?? null;
  if (!(await checkPassword(password, user?.password_hash ?? null, "argon2id")) || !user)
    return json({ error: "invalid_credentials" }, 401);
  const refreshToken = signer.randomToken(32);
  const familyId = signer.randomToken(16);
  const token = await tokenColumns(request, signer, {
    userId: user.id,
    familyId,
    familyCreatedAt: now,
    parentId: null,
    token: refreshToken,
    now,
  });
  const [inserted] = await db.batch([
    db.prepare(INSERT_WHILE_ACCOUNT_UNCHANGED).bind(...token, user.id, user.password_hash, 1, user.tokens_valid_after),
    db.prepare(CLEAR_COUNTER_IF_TOKEN).bind(`loginFailuresPerIdentifier:email:${email}`, token[0]),
    db.prepare(REFUND_HIT_IF_TOKEN).bind(`loginFailuresPerIp:${ip(request)}`, 0, token[0]),
    db
      .prepare(INSERT_ACTIVITY_IF_TOKEN)
      .bind(
        signer.randomToken(16),
        user.id,
        "login",
        now,
        ip(request),
        request.headers.get("user-agent"),
        JSON.stringify({ method: "password", session_id: familyId }),
        token[0],
      ),
  ]);
  if (inserted?.meta.changes !== 1) return json({ error: "invalid_credentials" }, 401);
  const access = await signer.sign(user.id, familyId, now);
  return json({ access_token: access, token_type: "Bearer", expires_in: ACCESS_TTL_S, refresh_token: refreshToken });
}

async function page(
  env: ExactEnv,
  list: ListName,
  sql: string,
  binds: unknown[],
  position: (row: Record<string, unknown>) => { t: number; id: string },
) {
  const { results } = await session(env, "first-unconstrained")
    .prepare(sql)
    .bind(...binds, PAGE + 1)
    .all<Record<string, unknown>>();
  const last = results[PAGE - 1];
  const next = results.length > PAGE && last ? await encodeCursor(env.OTP_SECRET, list, position(last)) : null;
  return json({ items: results.slice(0, PAGE), next_cursor: next });
}

/** The cold path: a cache miss, the public-profile lookup, the R2 read, and the copy put in the cache. */
async function avatar(url: URL, env: ExactEnv, ctx: ExecutionContext): Promise<Response> {
  const userId = url.searchParams.get("user") ?? "";
  const version = url.searchParams.get("v") ?? "";
  const key = `https://${url.host}/api/v1/profiles/${userId}/avatar?v=${version}`; // as avatar.cache.ts keys it
  const hit = await caches.default.match(key);
  if (hit) return hit;
  const row = await session(env, "first-primary")
    .prepare(PUBLIC_AVATAR)
    .bind(userId, 1, 1, 1)
    .first<{ avatar_key: string | null; avatar_etag: string | null; avatar_content_type: string | null }>();
  if (!row?.avatar_key) return json({ error: "not_found" }, 404);
  const object = await env.AVATARS.get(row.avatar_key);
  if (!object) return json({ error: "not_found" }, 404);
  const headers = {
    "content-type": row.avatar_content_type ?? "application/octet-stream",
    "content-length": String(object.size),
    etag: row.avatar_etag ?? "",
    "cache-control": "public, max-age=31536000, immutable",
  };
  // Only the current version's URL is cached (keys are avatars/{user}/{version}.{ext}).
  if (!row.avatar_key.includes(`/${version}.`)) return new Response(object.body, { headers });
  const [forClient, forCache] = object.body.tee();
  ctx.waitUntil(caches.default.put(key, new Response(forCache, { headers: { ...headers, "cache-control": "public, s-maxage=3600" } })));
  return new Response(forClient, { headers });
}

/** The exact floor for `path` (without its /exact prefix), or null when there is none. */
export function exactFloor(
  request: Request,
  url: URL,
  path: string,
  env: ExactEnv,
  ctx: ExecutionContext,
  signer: Signer,
): Promise<Response> | null {
  switch (path) {
    case "/me":
      return me(request, env, signer);
    case "/refresh":
      return refresh(request, env, signer);
    case "/login":
      return login(request, env, signer);
    case "/profiles":
      return page(env, "profiles", DIRECTORY, [1, 1], (row) => ({ t: row.created_at as number, id: row.id as string }));
    case "/statuses":
      return page(env, "statuses", TIMELINE, [1, 1, 1], (row) => ({ t: row.created_at as number, id: row.id as string }));
    case "/avatar":
      return avatar(url, env, ctx);
    default:
      return null;
  }
}
