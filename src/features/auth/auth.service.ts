/**
 * Accounts and password sign-in. Enumeration-safe: an unknown account, a wrong password and a
 * disabled account get the same 401 and cost the same hashing time.
 */
import type { z } from "@hono/zod-openapi";
import type { Deps } from "../../deps";
import { randomId } from "../../lib/crypto";
import { AppError, type FieldError } from "../../lib/errors";
import { clientKey } from "../../lib/ip";
import { assertWithinLimit } from "../../lib/rate-limit";
import { type LoginIdentifier, StoreError, type User } from "../../store";
import { newCode } from "../otp/otp.service";
import type { UserSchema } from "./auth.schemas";
import { assertReserved } from "./password-check";
import { checkPassword, hashPassword, needsRehash } from "./password-hash";
import { checkPasswordPolicy } from "./password-policy";
import { prepareTokenPair, type TokenResponse } from "./tokens.service";
import { USERNAME_HOLD_MS, usernameProblem } from "./username-policy";

/** The public view of an account. */
export function userView(user: User): z.infer<typeof UserSchema> {
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

/** Throws a 400 naming `username` when it cannot be chosen (`usernameProblem`); a name kept unchanged is not checked. */
export function assertUsernameChoosable(username: string | null, options: { staff: boolean }): void {
  const problem = username === null ? null : usernameProblem(username, options);
  if (problem) throw new AppError("validation_failed", `username: ${problem}`, { errors: [{ path: "username", message: problem }] });
}

/**
 * Throws 409 when the email or username already belongs to an account (other than `exceptUserId`),
 * or the username is held after its release (`USERNAME_HOLD_MS`) for someone else. A check before
 * the write: a name released in the moment between them is taken, as it would be a moment later.
 */
export async function assertIdentifiersFree(
  deps: Pick<Deps, "users" | "clock">,
  email: string | null,
  username: string | null,
  exceptUserId?: string,
) {
  const [holders, released] = await Promise.all([
    deps.users.holdersOf(email, username),
    username ? deps.users.releasedUsername(username, deps.clock.now() - USERNAME_HOLD_MS) : null,
  ]);
  for (const row of holders) {
    if (row.id === exceptUserId) continue;
    if (email && row.email === email) throw new AppError("email_taken");
    if (username && row.username === username) throw new AppError("username_taken");
  }
  if (released && released.holder !== exceptUserId) throw new AppError("username_taken");
}

/** Maps the store's unique violation (a lost race) to the same 409 the pre-check gives. */
export function rethrowUniqueViolation(error: unknown): never {
  if (error instanceof StoreError && (error.kind === "email_taken" || error.kind === "username_taken")) throw new AppError(error.kind);
  throw error;
}

export async function register(
  deps: Deps,
  input: { email: string; password: string; password_confirm?: string; username?: string },
): Promise<User> {
  const { clock, meta } = deps;
  if (input.password_confirm !== undefined && input.password_confirm !== input.password) {
    throw new AppError("validation_failed", "password_confirm: does not match password", {
      errors: [{ path: "password_confirm", message: "does not match password" }],
    });
  }
  assertPasswordPolicy(input.password, { email: input.email, username: input.username });
  assertUsernameChoosable(input.username ?? null, { staff: false });
  const now = clock.now();
  assertWithinLimit("registerPerIp", await deps.counters.hit("registerPerIp", clientKey(meta.ip), now), now);
  await assertIdentifiersFree(deps, input.email, input.username ?? null);

  const config = await deps.config();
  const user: User = {
    id: randomId(),
    email: input.email,
    pendingEmail: null,
    username: input.username ?? null,
    passwordHash: await hashPassword(input.password, deps.passwordHasher),
    isActive: true,
    isStaff: false,
    emailVerified: !config.require_email_verification,
    tokensValidAfter: 0,
    createdAt: now,
    updatedAt: now,
  };
  const code = user.emailVerified ? null : await newCode(deps, user.email, "verify_email");
  try {
    // The account, its profile, its history and its first code exist together or not at all.
    await deps.users.register({
      user,
      activity: { userId: user.id, type: "register", nowMs: now, meta },
      code: code?.row ?? null,
    });
  } catch (error) {
    rethrowUniqueViolation(error);
  }
  // The account exists whatever becomes of its mail: a code the queue refused was voided, with
  // the address's mail counters given back, so the registrant's "send a new code" works at once.
  await code?.send().catch((error: unknown) => {
    if (!(error instanceof AppError && error.code === "service_unavailable")) throw error;
  });
  return user;
}

export async function login(deps: Deps, input: { email?: string; username?: string; password: string }): Promise<TokenResponse> {
  const { clock, meta } = deps;
  const hasher = deps.passwordHasher;
  const now = clock.now();
  const ip = clientKey(meta.ip);
  const identifier: LoginIdentifier = input.email ? { email: input.email } : { username: input.username ?? "" };
  // One round trip: the account, and this attempt reserved on the IP's and the identifier's
  // failure counters before the password is checked.
  const attempt = await deps.users.beginPasswordLogin(identifier, ip, now);
  assertReserved(attempt.ip, attempt.identifier, now);
  const user = attempt.user;

  const valid = await checkPassword(input.password, user?.passwordHash ?? null, hasher);
  if (!user || !valid || !user.isActive) {
    // The same statement for every identifier: the entry is written only when the account exists.
    await deps.users.recordLoginFailure(identifier, {
      userId: "",
      type: "login_failed",
      nowMs: now,
      meta,
      details: { method: "password" },
    });
    throw new AppError("invalid_credentials", "The email/username or password is not correct.");
  }
  const config = await deps.config();
  // Only after the right password, so the 403 reveals nothing to someone guessing. That password
  // was no failed guess: its check is given back, as after any right password.
  if (config.require_email_verification && !user.emailVerified) {
    await deps.counters.release({ identifier, ip });
    throw new AppError("email_not_verified", "Confirm your email address with the code we sent, or request a new one.");
  }

  const pair = await prepareTokenPair(deps, user.id);
  const rehash = needsRehash(user.passwordHash, hasher) ? await hashPassword(input.password, hasher) : null;
  const signedIn = await deps.tokens.signIn({
    token: pair.row,
    verified: { passwordHash: user.passwordHash, tokensValidAfter: user.tokensValidAfter },
    release: { identifier, ip },
    activity: { userId: user.id, type: "login", nowMs: now, meta, details: { method: "password", session_id: pair.row.familyId } },
    rehash,
    nowMs: now,
  });
  // The password changed, the account was disabled or all its sign-ins ended while this one was
  // being checked: it ends with them.
  if (!signedIn) throw new AppError("invalid_credentials", "The email/username or password is not correct.");
  return pair.response;
}
