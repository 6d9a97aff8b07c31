/**
 * The signed-in user's own account: identifiers, email change, password, deletion.
 *
 * Email ownership: a new address is *pending* until it proves itself with the `change_email` code
 * mailed to it. Until then the account keeps its old, verified address, and the pending one
 * reserves nothing (anyone may still register it; whoever proves it first gets it). Completing
 * the change voids every other code of the account and ends every other sign-in.
 */
import type { Deps } from "../../deps";
import { AppError, lastStaff } from "../../lib/errors";
import { assertWithinLimit, isOverLimit, mailSubjects, type RateLimitName, rateLimited } from "../../lib/rate-limit";
import type { PasswordCheckRelease, Profile, ProfileUpdate, User } from "../../store";
import {
  assertIdentifiersFree,
  assertPasswordPolicy,
  assertUsernameChoosable,
  rethrowUniqueViolation,
  userView,
} from "../auth/auth.service";
import { reauthenticate } from "../auth/password-check";
import { hashPassword, hasUsablePassword } from "../auth/password-hash";
import { newNotice } from "../mail/notices";
import { assertSpent, checkCode, invalidCode, newCode, recordFailure } from "../otp/otp.service";
import { deleteAllAvatars, purgeAvatarCopy } from "../profiles/avatar.service";
import { profileView } from "../profiles/profiles.service";

/**
 * A change authorised by the current password found the account changed when it was written: a
 * new password (a reset, another change) or its sign-ins ended since the request read it. Nothing
 * was written; the owner's change, which may be the very reason for it, stands.
 */
function accountChanged(): AppError {
  return new AppError(
    "conflict",
    "The account changed while this request ran (a new password, or its sign-ins ended); nothing was changed.",
  );
}

/** The account as its owner sees it: the public user fields, the pending address, and the profile. */
export function meView(user: User, profile: Profile) {
  return {
    ...userView(user),
    pending_email: user.pendingEmail,
    has_password: hasUsablePassword(user.passwordHash),
    profile: profileView(profile),
  };
}

/**
 * Reserves the code mail of an email change on the account's and the new address's counters;
 * 429 when over, and then the password check that authorised it is given back: the caller proved
 * the password, and a refused change is not a failed guess.
 */
async function reserveChangeMail(deps: Deps, userId: string, address: string, release: PasswordCheckRelease, nowMs: number) {
  const reserved = await deps.counters.reserveChangeMail(userId, address, nowMs);
  for (const [name, row] of [
    ["emailChangesPerAccount", reserved.account],
    ["otpPerEmailMinute", reserved.minute],
    ["otpPerEmailHour", reserved.hour],
  ] as const) {
    if (row && isOverLimit(name, row)) {
      await deps.counters.release(release);
      throw rateLimited(row, nowMs, "Too many codes were mailed for email changes; try again later.");
    }
  }
}

/**
 * Runs the change a right password authorised. If the database fails it (nothing changed), what
 * was counted for it is given back, best effort: the password check (a right password is no
 * failed guess, and ten such failures would otherwise lock the owner out) and `refunds`.
 */
async function givingBackIfFailed<T>(
  deps: Deps,
  release: PasswordCheckRelease | null,
  refunds: [RateLimitName, string][],
  change: () => Promise<T>,
): Promise<T> {
  try {
    return await change();
  } catch (error) {
    if (release) await deps.counters.release(release).catch(() => undefined);
    if (refunds.length > 0) await deps.counters.refund(refunds).catch(() => undefined);
    throw error;
  }
}

/**
 * Whether an address has an account is private (registration tells it at 20 an hour per IP): an
 * email change says it only after the password, and counts a taken address as an email change
 * asked, so a signed-in account cannot test addresses faster than it may mail codes to them. The
 * address's own counters are not touched (nothing is mailed), and the right password is given back.
 */
async function assertAddressFree(deps: Deps, userId: string, address: string, release: PasswordCheckRelease, nowMs: number) {
  try {
    await assertIdentifiersFree(deps, address, null, userId);
  } catch (error) {
    const counted = await deps.counters.hit("emailChangesPerAccount", userId, nowMs);
    await deps.counters.release(release);
    assertWithinLimit("emailChangesPerAccount", counted, nowMs);
    throw error;
  }
}

/**
 * PUT (`replace`) sets both editable fields, an omitted username becoming null; PATCH changes
 * only the fields given. A new email needs the current password and becomes *pending*: a
 * `change_email` code goes to the new address and a notice to the old one. Giving the current
 * address again cancels a pending change.
 */
export async function updateMe(
  deps: Deps,
  user: User,
  input: { email?: string; username?: string | null; current_password?: string },
  mode: "replace" | "patch",
  /** A profile change to save in the same transaction (the website's one form for name and profile). */
  profile: ProfileUpdate | null = null,
): Promise<User> {
  const { clock, meta } = deps;
  const email = input.email ?? user.email;
  const username = mode === "replace" ? (input.username ?? null) : input.username === undefined ? user.username : input.username;
  const emailChange = email !== user.email;
  const cancelPending = !emailChange && input.email !== undefined && user.pendingEmail !== null;
  if (!emailChange && !cancelPending && username === user.username && !profile) return user;

  // A username is public: a taken one is said before the password check, and costs none.
  if (username !== user.username) assertUsernameChoosable(username, { staff: user.isStaff });
  await assertIdentifiersFree(deps, null, username !== user.username ? username : null, user.id);
  const release = emailChange ? await reauthenticate(deps, user, input.current_password) : null;
  const now = clock.now();
  if (release) {
    await assertAddressFree(deps, user.id, email, release, now);
    await reserveChangeMail(deps, user.id, email, release, now);
  }

  const pendingEmail = emailChange ? email : cancelPending ? null : user.pendingEmail;
  const updated: User = { ...user, username, pendingEmail, updatedAt: now };
  const code = emailChange ? await newCode(deps, email, "change_email") : null;
  const notice = emailChange ? newNotice(deps, "email_change_requested", user.email, email) : null;
  // An email change that fails leaves the account's allowance and the address's code mails as they were.
  const mail = mailSubjects(email, "change_email");
  const refunds: [RateLimitName, string][] = emailChange
    ? [
        ["emailChangesPerAccount", user.id],
        ["otpPerEmailMinute", mail.minute],
        ["otpPerEmailHour", mail.hour],
      ]
    : [];
  let written: boolean;
  try {
    written = await givingBackIfFailed(deps, release, refunds, () =>
      deps.users.updateIdentifiers({
        userId: user.id,
        username: username !== user.username ? username : undefined,
        pendingEmail: emailChange || cancelPending ? pendingEmail : undefined,
        nowMs: now,
        cancelPendingCodes: cancelPending,
        code: code?.row ?? null,
        emailChange: notice
          ? { activity: { userId: user.id, type: "email_change_requested", nowMs: now, meta }, asRead: user, notice: notice.row }
          : null,
        renamed: username !== user.username ? { userId: user.id, type: "username_changed", nowMs: now, meta } : null,
        profile,
        release,
        signInsValidAfter: user.tokensValidAfter,
      }),
    );
  } catch (error) {
    rethrowUniqueViolation(error);
  }
  if (!written) throw accountChanged();
  // A code the queue refused is voided, its mail counters given back (503). The change still
  // counts as one of the account's five an hour: its notice to the old address is on its way.
  await code?.send();
  await notice?.send();
  return updated;
}

/**
 * `POST /me/email/verify`: completes a pending email change with the code mailed to the new
 * address. In one transaction: the address moves, it counts as verified, every outstanding code
 * of the account is voided, and every sign-in but this one ends (their access tokens with them:
 * `requireUser` checks that a token's sign-in is live). An address another account took in the
 * meantime is a 409 and changes nothing. The old address gets a final notice.
 */
export async function confirmEmailChange(deps: Deps, user: User, sessionId: string, code: string): Promise<User> {
  const { clock } = deps;
  const address = user.pendingEmail;
  if (address === null) throw invalidCode();
  const check = await checkCode(deps, { address, purpose: "change_email", code, account: { by: "user", userId: user.id } });
  if (!check.ok) return recordFailure(deps, check);
  const now = clock.now();
  const notice = newNotice(deps, "email_changed", user.email, address);
  try {
    assertSpent(
      await deps.codes.spendForEmailChange(
        check.codeId,
        { userId: user.id, type: "email_changed", nowMs: now, meta: deps.meta },
        { address, keepSessionId: sessionId, notice: notice.row },
      ),
    );
  } catch (error) {
    rethrowUniqueViolation(error);
  }
  await notice.send();
  return { ...user, email: address, pendingEmail: null, emailVerified: true, updatedAt: now };
}

/**
 * Sets a new password; every other sign-in and every access token issued so far stop working.
 * The caller proves the right to: with the current password, or with a `reset_password` code
 * mailed to the account's address (`POST /auth/otp`). An account without a usable password (its
 * address was claimed by a code sign-in) has only the code. An access token alone never sets a
 * password: whoever stole one would make it a password of their own, then move the address with
 * it (`PATCH /me` takes the password) and end the owner's sign-ins.
 */
export async function changePassword(
  deps: Deps,
  user: User,
  sessionId: string,
  input: { current_password?: string; new_password: string; code?: string },
): Promise<void> {
  // The policy first: a refused new password is no failed guess of the current one.
  assertPasswordPolicy(input.new_password, { email: user.email, username: user.username }, "new_password");
  if (input.code !== undefined) return setPasswordWithCode(deps, user, sessionId, input.code, input.new_password);
  if (!hasUsablePassword(user.passwordHash)) {
    const message = "required: the account has no password yet; give a reset_password code mailed to its address (POST /auth/otp)";
    throw new AppError("validation_failed", `code: ${message}`, { errors: [{ path: "code", message }] });
  }
  const release = await reauthenticate(deps, user, input.current_password);
  const { clock, meta } = deps;
  const now = clock.now();
  const passwordHash = await hashPassword(input.new_password, deps.passwordHasher);
  const written = await givingBackIfFailed(deps, release, [], () =>
    deps.users.changePassword({
      asRead: user,
      passwordHash,
      keepSessionId: sessionId,
      nowMs: now,
      activity: { userId: user.id, type: "password_changed", nowMs: now, meta },
      release,
    }),
  );
  if (!written) throw accountChanged();
}

/**
 * The password set with a `reset_password` code of this account, bound to its address: spent as a
 * reset is (the address verified, every other code voided, its lockout forgiven), except that this
 * sign-in continues, as after a change with the current password.
 */
async function setPasswordWithCode(deps: Deps, user: User, sessionId: string, code: string, newPassword: string): Promise<void> {
  const check = await checkCode(deps, { address: user.email, purpose: "reset_password", code, account: { by: "user", userId: user.id } });
  if (!check.ok) return recordFailure(deps, check);
  const passwordHash = await hashPassword(newPassword, deps.passwordHasher);
  const entry = { userId: user.id, type: "password_changed" as const, nowMs: deps.clock.now(), meta: deps.meta };
  assertSpent(await deps.codes.spendForReset(check.codeId, entry, { passwordHash, address: user.email, keepSessionId: sessionId }));
}

/**
 * Deletes the account, unless it is the last active staff account (409 last_staff). One statement removes the user row; foreign keys cascade to tokens,
 * codes, profile, statuses and activity in the same transaction. The avatar objects in R2 go
 * afterwards, with their edge-cache copies: if that fails they are orphans under a dead user's
 * prefix (logged) until the daily sweep removes them, never a live profile pointing at a missing image.
 */
export async function deleteMe(deps: Deps, user: User, currentPassword: string): Promise<void> {
  const release = await reauthenticate(deps, user, currentPassword);
  // Read before the row goes: the current avatar's copy is purged whatever R2 does afterwards.
  const current = (await deps.profiles.byUser(user.id))?.avatarKey ?? null;
  // The address's owner hears of it, as of an email change: whoever deleted it knew the password.
  // Only a proven address: an unverified one may belong to someone other than who registered it.
  const notice = user.emailVerified ? newNotice(deps, "account_deleted", user.email) : null;
  const outcome = await givingBackIfFailed(deps, release, [], () =>
    deps.users.delete(user, release, notice?.row ?? null, deps.clock.now()).catch(async (error: unknown) => {
      // The deletion may have committed (its answer lost), and a retry could then do nothing
      // (401): the copy goes now. Had it not committed, the next view simply caches it again.
      if (current) await purgeAvatarCopy(deps, user.id, current).catch(() => undefined);
      throw error;
    }),
  );
  if (outcome === "last_staff") throw lastStaff();
  if (outcome === "changed") throw accountChanged();
  await notice?.send();
  await deleteAllAvatars(deps, user.id, current);
}
