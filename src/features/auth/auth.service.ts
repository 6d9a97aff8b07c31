/**
 * Accounts and password sign-in. Enumeration-safe: an unknown account, a wrong password and a
 * disabled account get the same 401 and cost the same hashing time.
 */
import { eq, or, type SQL, sql } from "drizzle-orm";
import { isUniqueViolation, runBatch } from "../../db/client";
import { profiles, type User, users } from "../../db/schema";
import type { Deps } from "../../env";
import { randomId } from "../../lib/crypto";
import { AppError, type FieldError } from "../../lib/errors";
import { enforceRateLimit, type RateLimitRow } from "../../lib/rate-limit";
import { activityInsert, activityInsertSelect } from "../activity/activity.record";
import { countMailToAddress, prepareCode } from "../otp/otp.service";
import { assertReserved, releasePasswordCheck, reservePasswordCheck } from "./password-check";
import { checkPassword, hasherFromEnv, hashPassword, needsRehash } from "./password-hash";
import { checkPasswordPolicy } from "./password-policy";
import { prepareTokenPair, type TokenResponse } from "./tokens.service";

/** The public view of an account. */
export function userView(user: User) {
  return {
    id: user.id,
    email: user.email,
    username: user.username,
    is_active: user.isActive,
    is_staff: user.isStaff,
    email_verified: user.emailVerified,
    created_at: new Date(user.createdAt).toISOString(),
  };
}

/** Throws a 400 naming `password` when it breaks the policy. */
export function assertPasswordPolicy(password: string, attributes: { email?: string | null; username?: string | null }, path = "password") {
  const problems = checkPasswordPolicy(password, attributes);
  if (problems.length > 0) {
    const errors: FieldError[] = problems.map((message) => ({ path, message }));
    throw new AppError("validation_failed", `${path}: ${problems.join("; ")}`, { errors });
  }
}

/** Throws 409 when the email or username already belongs to an account (other than `exceptUserId`). */
export async function assertIdentifiersFree(deps: Deps, email: string | null, username: string | null, exceptUserId?: string) {
  const conditions = [email ? eq(users.email, email) : undefined, username ? eq(users.username, username) : undefined].filter(Boolean);
  if (conditions.length === 0) return;
  const taken = await deps.db
    .select({ id: users.id, email: users.email, username: users.username })
    .from(users)
    .where(or(...conditions));
  for (const row of taken) {
    if (row.id === exceptUserId) continue;
    if (email && row.email === email) throw new AppError("email_taken");
    if (username && row.username === username) throw new AppError("username_taken");
  }
}

/** Maps a UNIQUE violation from a lost race to the same 409 the pre-check gives. */
export function rethrowUniqueViolation(error: unknown): never {
  if (isUniqueViolation(error, "users.email")) throw new AppError("email_taken");
  if (isUniqueViolation(error, "users.username")) throw new AppError("username_taken");
  throw error;
}

export async function register(
  deps: Deps,
  input: { email: string; password: string; password_confirm?: string; username?: string },
): Promise<User> {
  const { db, clock, meta, env } = deps;
  if (input.password_confirm !== undefined && input.password_confirm !== input.password) {
    throw new AppError("validation_failed", "password_confirm: does not match password", {
      errors: [{ path: "password_confirm", message: "does not match password" }],
    });
  }
  assertPasswordPolicy(input.password, { email: input.email, username: input.username });
  const now = clock.now();
  await enforceRateLimit(db, "registerPerIp", meta.ip ?? "unknown", now);
  await assertIdentifiersFree(deps, input.email, input.username ?? null);

  const config = await deps.config();
  const user: User = {
    id: randomId(),
    email: input.email,
    pendingEmail: null,
    username: input.username ?? null,
    passwordHash: await hashPassword(input.password, hasherFromEnv(env.PASSWORD_HASHER)),
    isActive: true,
    isStaff: false,
    emailVerified: !config.require_email_verification,
    tokensValidAfter: 0,
    createdAt: now,
    updatedAt: now,
  };
  const code = user.emailVerified ? null : await prepareCode(deps, { userId: user.id, sentTo: user.email }, "verify_email");
  try {
    // The account, its profile, its history and its first code exist together or not at all.
    await runBatch(db, [
      db.insert(users).values(user),
      db.insert(profiles).values({ userId: user.id, updatedAt: now }),
      activityInsert(db, { userId: user.id, type: "register", nowMs: now, meta }),
      ...(code ? [...code.queries, ...countMailToAddress(db, user.email, "verify_email", now)] : []),
    ]);
  } catch (error) {
    rethrowUniqueViolation(error);
  }
  await code?.send();
  return user;
}

/**
 * The per-account counter's subject for a login by email or username: the account's id when it
 * exists (so email and username share one counter), otherwise the identifier itself, so an
 * unknown address accumulates failures and gets 429 exactly like an existing one.
 */
function accountSubject(input: { email?: string; username?: string }): SQL {
  const match = input.email ? eq(users.email, input.email) : eq(users.username, input.username ?? "");
  const fallback = input.email ? `unknown:email:${input.email}` : `unknown:username:${input.username ?? ""}`;
  return sql`COALESCE((SELECT ${users.id} FROM ${users} WHERE ${match}), ${fallback})`;
}

export async function login(deps: Deps, input: { email?: string; username?: string; password: string }): Promise<TokenResponse> {
  const { db, clock, meta, env } = deps;
  const hasher = hasherFromEnv(env.PASSWORD_HASHER);
  const now = clock.now();
  const ip = meta.ip ?? "unknown";
  const match = input.email ? eq(users.email, input.email) : eq(users.username, input.username ?? "");
  // One round trip: the account, and this attempt reserved on the IP's and the account's
  // failure counters before the password is checked.
  const [accounts, ipRows, accountRows] = (await runBatch(db, [
    db.select().from(users).where(match).limit(1),
    ...reservePasswordCheck(db, accountSubject(input), ip, now),
  ])) as [User[], RateLimitRow[], RateLimitRow[]];
  assertReserved(ipRows[0], accountRows[0], now);
  const user = accounts[0];

  const valid = await checkPassword(input.password, user?.passwordHash ?? null, hasher);
  if (!user || !valid || !user.isActive) {
    // The same statement for every identifier: the entry is written only when the account exists.
    await runBatch(db, [
      activityInsertSelect(
        db,
        { userId: "", type: "login_failed", nowMs: now, meta, details: { method: "password" } },
        { userIdFrom: sql`(SELECT ${users.id} FROM ${users} WHERE ${match})`, where: sql`EXISTS (SELECT 1 FROM ${users} WHERE ${match})` },
      ),
    ]);
    throw new AppError("invalid_credentials", "The email/username or password is not correct.");
  }
  const config = await deps.config();
  // Only after the right password, so the 403 reveals nothing to someone guessing.
  if (config.require_email_verification && !user.emailVerified) {
    throw new AppError("email_not_verified", "Confirm your email address with the code we sent, or request a new one.");
  }

  const pair = await prepareTokenPair(deps, user.id);
  const rehash = needsRehash(user.passwordHash, hasher) ? await hashPassword(input.password, hasher) : null;
  await runBatch(db, [
    pair.insert,
    ...releasePasswordCheck(db, user.id, ip),
    activityInsert(db, {
      userId: user.id,
      type: "login",
      nowMs: now,
      meta,
      details: { method: "password", session_id: pair.row.familyId },
    }),
    rehash !== null && db.update(users).set({ passwordHash: rehash, updatedAt: now }).where(eq(users.id, user.id)),
  ]);
  return pair.response;
}
