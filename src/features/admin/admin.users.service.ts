/**
 * Account management for staff: search, inspect, change the three account flags, end every
 * session. Disabling an account revokes its refresh tokens and cuts off its access tokens in the
 * same D1 batch as the flag change and its audit entry, so a disabled user keeps no way in.
 */
import { and, count, desc, eq, gt, isNull, or, sql } from "drizzle-orm";
import { runBatch } from "../../db/client";
import { refreshTokens, type User, users } from "../../db/schema";
import type { Deps } from "../../env";
import { AppError } from "../../lib/errors";
import { olderThan, pageRequest, toPage } from "../../lib/pagination";
import { startsWith } from "../../lib/search";
import { normalizeIdentifier } from "../../lib/text";
import { activityInsert } from "../activity/activity.record";
import { userView } from "../auth/auth.service";
import { invalidateAccessTokens, revokeAllForUser } from "../auth/tokens.service";
import { auditInsert } from "./admin.audit";

/** What staff see of an account: the public view plus bookkeeping. */
export function adminUserView(user: User) {
  return {
    ...userView(user),
    updated_at: new Date(user.updatedAt).toISOString(),
    tokens_valid_after: user.tokensValidAfter > 0 ? new Date(user.tokensValidAfter).toISOString() : null,
  };
}

/** Accounts whose email or username starts with `q` (canonicalised like stored identifiers), newest first. */
export async function searchUsers(deps: Deps, input: { q?: string; limit: number; cursor?: string }) {
  const { limit, cursor } = await pageRequest(deps.env.OTP_SECRET, input);
  const q = input.q ? normalizeIdentifier(input.q) : "";
  const rows = await deps.db
    .select()
    .from(users)
    .where(and(q ? or(startsWith(users.email, q), startsWith(users.username, q)) : undefined, olderThan(users.createdAt, users.id, cursor)))
    .orderBy(desc(users.createdAt), desc(users.id))
    .limit(limit + 1);
  return toPage(deps.env.OTP_SECRET, rows, limit, adminUserView);
}

async function findUser(deps: Deps, id: string): Promise<User> {
  const user = await deps.db.query.users.findFirst({ where: eq(users.id, id) });
  if (!user) throw new AppError("not_found", "No account with this id.");
  return user;
}

/** One account, with how many sign-ins (refresh-token families) are still live. */
export async function getUser(deps: Deps, id: string) {
  const user = await findUser(deps, id);
  const [live] = await deps.db
    .select({ sessions: count(sql`DISTINCT ${refreshTokens.familyId}`) })
    .from(refreshTokens)
    .where(and(eq(refreshTokens.userId, id), isNull(refreshTokens.revokedAt), gt(refreshTokens.expiresAt, deps.clock.now())));
  return { ...adminUserView(user), active_sessions: live?.sessions ?? 0 };
}

export interface UserFlagsPatch {
  is_active?: boolean;
  is_staff?: boolean;
  email_verified?: boolean;
}

/**
 * Changes account flags. A staff user may not clear their own staff flag or disable themselves
 * (409): that is how the last administrator would lock everyone out.
 */
export async function updateUserFlags(deps: Deps, actor: User, id: string, patch: UserFlagsPatch) {
  if (Object.keys(patch).length === 0) throw new AppError("validation_failed", "Give at least one of is_active, is_staff, email_verified.");
  if (id === actor.id && (patch.is_staff === false || patch.is_active === false)) {
    throw new AppError("conflict", "You cannot remove your own staff flag or disable your own account; ask another staff member.");
  }
  const { db, clock } = deps;
  const user = await findUser(deps, id);
  const current: Required<UserFlagsPatch> = { is_active: user.isActive, is_staff: user.isStaff, email_verified: user.emailVerified };
  const oldValues: Record<string, boolean> = {};
  const newValues: Record<string, boolean> = {};
  for (const field of ["is_active", "is_staff", "email_verified"] as const) {
    const value = patch[field];
    if (value !== undefined && value !== current[field]) {
      oldValues[field] = current[field];
      newValues[field] = value;
    }
  }
  if (Object.keys(newValues).length === 0) return getUser(deps, id);

  const now = clock.now();
  const disabling = newValues.is_active === false;
  await runBatch(db, [
    db
      .update(users)
      .set({
        ...(newValues.is_active !== undefined ? { isActive: newValues.is_active } : {}),
        ...(newValues.is_staff !== undefined ? { isStaff: newValues.is_staff } : {}),
        ...(newValues.email_verified !== undefined ? { emailVerified: newValues.email_verified } : {}),
        updatedAt: now,
      })
      .where(eq(users.id, id)),
    disabling && revokeAllForUser(db, id, "admin", now),
    disabling && invalidateAccessTokens(db, id, now),
    auditInsert(db, {
      actorId: actor.id,
      action: "user.update",
      target: id,
      oldValue: JSON.stringify(oldValues),
      newValue: JSON.stringify(newValues),
      nowMs: now,
    }),
  ]);
  return getUser(deps, id);
}

/** Ends every session of the account: refresh tokens revoked, access tokens issued so far refused. */
export async function adminLogoutAll(deps: Deps, actor: User, id: string): Promise<void> {
  const { db, clock } = deps;
  await findUser(deps, id);
  const now = clock.now();
  await runBatch(db, [
    revokeAllForUser(db, id, "admin", now),
    invalidateAccessTokens(db, id, now),
    // The user's history says staff did it, without showing them the staff member's address.
    activityInsert(db, { userId: id, type: "logout_all", nowMs: now, meta: { ip: null, userAgent: null }, details: { by: "admin" } }),
    auditInsert(db, { actorId: actor.id, action: "user.logout_all", target: id, oldValue: null, newValue: null, nowMs: now }),
  ]);
}
