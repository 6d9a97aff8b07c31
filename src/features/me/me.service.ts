/** The signed-in user's own account: identifiers, password, deletion. */
import { eq } from "drizzle-orm";
import { runBatch } from "../../db/client";
import { type User, users } from "../../db/schema";
import type { Deps } from "../../env";
import { AppError } from "../../lib/errors";
import { activityInsert } from "../activity/activity.record";
import { assertIdentifiersFree, assertPasswordPolicy, rethrowUniqueViolation } from "../auth/auth.service";
import { hasherFromEnv, hashPassword, verifyPassword } from "../auth/password-hash";
import { invalidateAccessTokens, revokeAllForUser } from "../auth/tokens.service";
import { prepareCode } from "../otp/otp.service";
import { deleteAllAvatarObjects } from "../profiles/avatar.storage";

async function assertCurrentPassword(user: User, password: string | undefined) {
  if (password === undefined || !(await verifyPassword(password, user.passwordHash))) {
    throw new AppError("invalid_current_password");
  }
}

/**
 * PUT (`replace`) sets both editable fields, an omitted username becoming null; PATCH changes
 * only the fields given. A new email needs the current password, and must be confirmed again
 * when verification is required (a code is mailed to the new address).
 */
export async function updateMe(
  deps: Deps,
  user: User,
  input: { email?: string; username?: string | null; current_password?: string },
  mode: "replace" | "patch",
): Promise<User> {
  const { db, clock, meta } = deps;
  const email = input.email ?? user.email;
  const username = mode === "replace" ? (input.username ?? null) : input.username === undefined ? user.username : input.username;
  const emailChanged = email !== user.email;
  if (emailChanged) await assertCurrentPassword(user, input.current_password);
  if (!emailChanged && username === user.username) return user;
  await assertIdentifiersFree(deps, emailChanged ? email : null, username !== user.username ? username : null, user.id);

  const now = clock.now();
  const config = await deps.config();
  const emailVerified = emailChanged ? !config.require_email_verification : user.emailVerified;
  const updated: User = { ...user, email, username, emailVerified, updatedAt: now };
  const code = emailChanged && !emailVerified ? await prepareCode(deps, updated, "verify_email") : null;
  try {
    await runBatch(db, [
      db.update(users).set({ email, username, emailVerified, updatedAt: now }).where(eq(users.id, user.id)),
      emailChanged && activityInsert(db, { userId: user.id, type: "email_changed", nowMs: now, meta }),
      ...(code?.queries ?? []),
    ]);
  } catch (error) {
    rethrowUniqueViolation(error);
  }
  await code?.send();
  return updated;
}

/** Sets a new password; every other sign-in and every access token issued so far stop working. */
export async function changePassword(
  deps: Deps,
  user: User,
  sessionId: string,
  input: { current_password: string; new_password: string },
): Promise<void> {
  await assertCurrentPassword(user, input.current_password);
  assertPasswordPolicy(input.new_password, { email: user.email, username: user.username }, "new_password");
  const { db, clock, meta, env } = deps;
  const now = clock.now();
  const hash = await hashPassword(input.new_password, hasherFromEnv(env.PASSWORD_HASHER));
  await runBatch(db, [
    db.update(users).set({ passwordHash: hash, updatedAt: now }).where(eq(users.id, user.id)),
    revokeAllForUser(db, user.id, "password_changed", now, sessionId),
    invalidateAccessTokens(db, user.id, now),
    activityInsert(db, { userId: user.id, type: "password_changed", nowMs: now, meta }),
  ]);
}

/**
 * Deletes the account. One statement removes the user row; foreign keys cascade to tokens,
 * codes, profile, statuses and activity in the same transaction. The avatar objects in R2 go
 * afterwards: if that fails they are orphans under a dead user's prefix (logged), never a live
 * profile pointing at a missing image.
 */
export async function deleteMe(deps: Deps, user: User, currentPassword: string): Promise<void> {
  await assertCurrentPassword(user, currentPassword);
  await deps.db.delete(users).where(eq(users.id, user.id));
  await deleteAllAvatarObjects(deps.env.AVATARS, user.id);
}
