/**
 * Sign-ins as the user sees them. A session is a refresh-token family: it starts with a login and
 * gains a token at every refresh, each replacing the one before (see tokens.service.ts). Its
 * first token tells when it started, its newest when and from where it was last used.
 */
import { and, desc, eq, gt, inArray, isNull, max, min, sql } from "drizzle-orm";
import { runBatch } from "../../db/client";
import { refreshTokens } from "../../db/schema";
import type { Deps } from "../../env";
import { AppError } from "../../lib/errors";
import { activityInsertIf } from "../activity/activity.record";
import { revokeFamily } from "../auth/tokens.service";

export interface SessionView {
  id: string;
  created_at: string;
  last_used_at: string;
  expires_at: string;
  ip: string | null;
  user_agent: string | null;
  current: boolean;
}

/** A session in the data export: also the ones that have ended, and why. */
export interface ExportedSessionView extends Omit<SessionView, "current"> {
  active: boolean;
  revoked_at: string | null;
  revoked_reason: string | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The fields both views share, from the family's newest token and its first/last times. */
function sessionFields(row: {
  familyId: string;
  firstAt: number;
  lastAt: number;
  expiresAt: number;
  ip: string | null;
  userAgent: string | null;
}) {
  return {
    id: row.familyId,
    created_at: iso(row.firstAt),
    last_used_at: iso(row.lastAt),
    expires_at: iso(row.expiresAt),
    ip: row.ip,
    user_agent: row.userAgent,
  };
}

/**
 * SQL: the token is neither revoked nor expired at `nowMs`, and its sign-in is within its absolute
 * lifetime (checked here too because an operator may lower `session_max_age` after tokens were issued).
 */
const isLive = (nowMs: number, sessionMaxAgeSeconds: number) =>
  and(
    isNull(refreshTokens.revokedAt),
    gt(refreshTokens.expiresAt, nowMs),
    gt(refreshTokens.familyCreatedAt, nowMs - sessionMaxAgeSeconds * 1000),
  );

/** First and newest token time of each family of `userId` (optionally only the given families). */
function familySpans(deps: Pick<Deps, "db">, userId: string, families?: ReturnType<typeof liveFamilies>) {
  return deps.db
    .select({
      familyId: refreshTokens.familyId,
      firstAt: min(refreshTokens.createdAt).mapWith(Number).as("first_at"),
      lastAt: max(refreshTokens.createdAt).mapWith(Number).as("last_at"),
    })
    .from(refreshTokens)
    .where(and(eq(refreshTokens.userId, userId), families ? inArray(refreshTokens.familyId, families) : undefined))
    .groupBy(refreshTokens.familyId)
    .as("spans");
}

function liveFamilies(deps: Pick<Deps, "db">, userId: string, nowMs: number, sessionMaxAgeSeconds: number) {
  return deps.db
    .select({ familyId: refreshTokens.familyId })
    .from(refreshTokens)
    .where(and(eq(refreshTokens.userId, userId), isLive(nowMs, sessionMaxAgeSeconds)));
}

/** Columns shown for a session; never the token hash. */
const tokenColumns = {
  familyId: refreshTokens.familyId,
  createdAt: refreshTokens.createdAt,
  expiresAt: refreshTokens.expiresAt,
  revokedAt: refreshTokens.revokedAt,
  revokedReason: refreshTokens.revokedReason,
  ip: refreshTokens.ip,
  userAgent: refreshTokens.userAgent,
};

/** Keeps the first row per family (rows come newest first, so that is the newest token). */
function onePerFamily<R extends { familyId: string }>(rows: R[]): R[] {
  const seen = new Set<string>();
  return rows.filter((row) => !seen.has(row.familyId) && seen.add(row.familyId));
}

/**
 * The user's active sign-ins (families with at least one unrevoked, unexpired token), most
 * recently used first. `current` marks the one the caller's access token belongs to.
 */
export async function listSessions(
  deps: Pick<Deps, "db" | "clock" | "config">,
  userId: string,
  currentSessionId: string,
): Promise<SessionView[]> {
  const now = deps.clock.now();
  const maxAge = (await deps.config()).session_max_age;
  const spans = familySpans(deps, userId, liveFamilies(deps, userId, now, maxAge));
  const rows = await deps.db
    .select({ ...tokenColumns, firstAt: spans.firstAt, lastAt: spans.lastAt })
    .from(refreshTokens)
    .innerJoin(spans, eq(spans.familyId, refreshTokens.familyId))
    .where(and(eq(refreshTokens.userId, userId), isLive(now, maxAge)))
    .orderBy(desc(spans.lastAt), desc(refreshTokens.createdAt));
  return onePerFamily(rows).map((row) => ({ ...sessionFields(row), current: row.familyId === currentSessionId }));
}

/** Every sign-in still stored for the user, ended ones included (for the data export). */
export async function allSessions(deps: Pick<Deps, "db" | "clock">, userId: string): Promise<ExportedSessionView[]> {
  const now = deps.clock.now();
  const spans = familySpans(deps, userId);
  // The newest token of each family carries its last use, its expiry and its fate.
  const rows = await deps.db
    .select({ ...tokenColumns, firstAt: spans.firstAt, lastAt: spans.lastAt })
    .from(refreshTokens)
    .innerJoin(spans, and(eq(spans.familyId, refreshTokens.familyId), eq(spans.lastAt, refreshTokens.createdAt)))
    .where(eq(refreshTokens.userId, userId))
    .orderBy(desc(spans.lastAt));
  return onePerFamily(rows).map((row) => ({
    ...sessionFields(row),
    active: row.revokedAt === null && row.expiresAt > now,
    revoked_at: row.revokedAt === null ? null : iso(row.revokedAt),
    revoked_reason: row.revokedReason,
  }));
}

/**
 * Ends one of the user's sign-ins: every token of the family is revoked, so its refresh token
 * stops working at once. Access tokens already issued to it run out within `access_token_ttl`.
 * Another user's session, an unknown id or one already ended is a 404: the caller learns nothing
 * about sessions that are not theirs.
 */
export async function revokeSession(deps: Deps, userId: string, sessionId: string): Promise<void> {
  const { db, clock, meta } = deps;
  const now = clock.now();
  const maxAge = (await deps.config()).session_max_age;
  const liveAndOwned = and(eq(refreshTokens.familyId, sessionId), eq(refreshTokens.userId, userId), isLive(now, maxAge));
  const [owned] = await db.select({ id: refreshTokens.id }).from(refreshTokens).where(liveAndOwned).limit(1);
  if (!owned) throw new AppError("not_found", "No such active session.");
  await runBatch(db, [
    // Recorded only if the session is still live when the batch runs: a concurrent revocation
    // (logout, another tab) already ended it, and this request then changes nothing.
    activityInsertIf(
      db,
      { userId, type: "session_revoked", nowMs: now, meta, details: { session_id: sessionId } },
      sql`EXISTS (SELECT 1 FROM ${refreshTokens} WHERE ${liveAndOwned})`,
    ),
    revokeFamily(db, sessionId, "session_revoked", now),
  ]);
}
