/**
 * Sign-ins as the user sees them. A session is a refresh-token family: it starts with a login and
 * gains a token at every refresh, each replacing the one before (see tokens.service.ts). Its
 * first token tells when it started, its newest when and from where it was last used.
 */
import type { z } from "@hono/zod-openapi";
import type { Config } from "../../config/config.definitions";
import type { Deps } from "../../deps";
import { AppError } from "../../lib/errors";
import type { SessionRow } from "../../store";
import { sessionLifetimes, tokenEndsAt } from "../auth/tokens.service";
import type { ExportedSessionSchema, SessionSchema } from "./sessions.schemas";

export type SessionView = z.infer<typeof SessionSchema>;
/** A session in the data export: also the ones that have ended, and why. */
export type ExportedSessionView = z.infer<typeof ExportedSessionSchema>;

const iso = (ms: number) => new Date(ms).toISOString();

/** The fields both views share, from the family's newest token and its first/last times. */
function sessionFields(row: SessionRow, config: Config) {
  return {
    id: row.familyId,
    created_at: iso(row.firstAt),
    last_used_at: iso(row.lastAt),
    expires_at: iso(tokenEndsAt(row, config)),
    ip: row.ip,
    user_agent: row.userAgent,
  };
}

/**
 * The user's active sign-ins (families with at least one unrevoked, unexpired token within the
 * absolute lifetime), most recently used first. `current` marks the one the caller's access token belongs to.
 */
export async function listSessions(
  deps: Pick<Deps, "tokens" | "clock" | "config">,
  userId: string,
  currentSessionId: string,
): Promise<SessionView[]> {
  const now = deps.clock.now();
  // The lifetimes as configured now: an operator may have lowered either after tokens were issued.
  const config = await deps.config();
  const rows = await deps.tokens.liveSessions(userId, now, sessionLifetimes(config));
  return rows.map((row) => ({ ...sessionFields(row, config), current: row.familyId === currentSessionId }));
}

/** Every sign-in still stored for the user, ended ones included (for the data export). */
export async function allSessions(deps: Pick<Deps, "tokens" | "clock" | "config">, userId: string): Promise<ExportedSessionView[]> {
  const now = deps.clock.now();
  const [config, rows] = await Promise.all([deps.config(), deps.tokens.allSessions(userId)]);
  return rows.map((row) => ({
    ...sessionFields(row, config),
    active: row.revokedAt === null && tokenEndsAt(row, config) > now,
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
  const { clock, meta } = deps;
  const now = clock.now();
  const lifetimes = sessionLifetimes(await deps.config());
  if (!(await deps.tokens.isLiveSession(userId, sessionId, now, lifetimes))) throw new AppError("not_found", "No such active session.");
  // Recorded only if the session is still live when the batch runs (a concurrent logout changes nothing twice).
  await deps.tokens.revokeSession(userId, sessionId, now, lifetimes, {
    userId,
    type: "session_revoked",
    nowMs: now,
    meta,
    details: { session_id: sessionId },
  });
}
