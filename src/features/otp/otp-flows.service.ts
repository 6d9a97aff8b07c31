/**
 * The things a user does with emailed codes by address: ask for one, confirm their email, sign in
 * without a password, and reset a forgotten password. Enumeration-safe throughout: an unknown,
 * disabled or already-verified account gets the same answers *and the same work* as any other
 * (the same statements, the same HMAC, the same queue message; rows simply do not match), and
 * every failed use of a code is the same `400 invalid_code`.
 */
import type { Deps } from "../../deps";
import { clientKey } from "../../lib/ip";
import { log } from "../../lib/log";
import { isOverLimit, RATE_LIMITS, rateLimited } from "../../lib/rate-limit";
import type { PasswordCheckRelease, User } from "../../store";
import { assertPasswordPolicy } from "../auth/auth.service";
import { proveRegistrant } from "../auth/password-check";
import { hashPassword, UNUSABLE_PASSWORD_HASH } from "../auth/password-hash";
import { prepareTokenPair, type TokenResponse } from "../auth/tokens.service";
import type { RequestablePurpose } from "./otp.purposes";
import { assertSpent, checkCode, invalidCode, newCode, recordFailure } from "./otp.service";

/**
 * `POST /auth/otp`: issues a fresh code for `purpose` (superseding the previous one) and enqueues
 * its mail. One batch decides everything inside the database: the per-IP counter, the address's
 * per-minute (per purpose) and per-hour counters (the hour counts only requests the minute let through, so
 * rapid repeats cannot use up a real user's hourly allowance), and the code row, inserted only
 * when the address belongs to a live account (not yet verified, for `verify_email`) and every
 * limit allows it. The mail is enqueued in every case; the consumer sends only a code that
 * exists and is live, so for an unknown address or a throttled request it sends nothing.
 * Only the per-IP limit is visible (429), because it says nothing about the account.
 */
export async function requestCode(deps: Deps, input: { email: string; purpose: RequestablePurpose }): Promise<void> {
  const now = deps.clock.now();
  const { purpose } = input;
  const code = await newCode(deps, input.email, purpose);
  const counters = await deps.codes.issueByAddress({ code: code.row, ip: clientKey(deps.meta.ip), meta: deps.meta });
  const ipRow = counters.ip;
  if (ipRow && isOverLimit("otpPerIp", ipRow)) throw rateLimited(ipRow, now);
  if ((counters.hour?.count ?? Number.POSITIVE_INFINITY) > RATE_LIMITS.otpPerEmailHour.limit) {
    // Neither the address nor the account: logs should not collect who asked for codes.
    log("warn", "otp.throttled", { purpose, detail: "over the per-address limit; nothing was mailed" });
  }
  await code.send();
}

/** The account a code proved, and the code to spend; or the failure recorded and `invalid_code` thrown. */
async function expectValidCode(deps: Deps, purpose: RequestablePurpose, input: { email: string; code: string }) {
  const check = await checkCode(deps, { address: input.email, purpose, code: input.code, account: { by: "address" } });
  if (!check.ok) return recordFailure(deps, check);
  // A code checked by address succeeds only for the live account that owns the address.
  if (!check.user) throw invalidCode();
  return { user: check.user, codeId: check.codeId };
}

/**
 * Who confirms a registration besides the code, which proves only the mailbox: the password chosen
 * at registration, or (the website) a browser holding the registrant cookie, which it gets by
 * setting that password or proving it.
 */
export type RegistrantProof = { password: string } | { registrantBrowser: true };

/**
 * A `verify_email` code checked, then the registrant proven: the code first, so only someone who
 * reads the mailbox gets to try a password. That try is judged as a login by address is (the
 * address's and the client's failure counters); a wrong or locked-out password gives back what the right code
 * took, so the code stays usable and the address's daily ceiling of wrong codes is not touched.
 */
async function expectRegistrant(deps: Deps, input: { email: string; code: string }, proof: RegistrantProof) {
  const proven = await expectValidCode(deps, "verify_email", input);
  if (!("password" in proof)) return { ...proven, release: null };
  return { ...proven, release: await givingBackIfRefused(deps, proven.codeId, () => proveRegistrant(deps, proven.user, proof.password)) };
}

/**
 * Runs the check that follows a right code. If it refuses, the code gets back the try it took and
 * the address's count of wrong codes is untouched, so the user can go on with the same code. If
 * giving back fails too, the code keeps one try fewer: the caller still learns why it was refused.
 */
async function givingBackIfRefused<T>(deps: Deps, codeId: string, check: () => T | Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (error) {
    await deps.codes.giveBack(codeId).catch(() => undefined);
    throw error;
  }
}

/**
 * Spends the verification; a spend that lost (the code used or voided meanwhile) gives back the
 * password check it carried, as a check whose change failed for another reason does.
 */
async function spendVerification(deps: Deps, spent: Promise<boolean>, release: PasswordCheckRelease | null): Promise<void> {
  if (await spent) return;
  if (release) await deps.counters.release(release);
  throw invalidCode();
}

/** `POST /auth/verify-email`: marks the email verified with a `verify_email` code and the registrant's password. */
export async function verifyEmail(deps: Deps, input: { email: string; code: string; password: string }): Promise<User> {
  const { user, codeId, release } = await expectRegistrant(deps, input, { password: input.password });
  const now = deps.clock.now();
  await spendVerification(
    deps,
    deps.codes.spendForVerification(codeId, { userId: user.id, type: "email_verified", nowMs: now, meta: deps.meta }, { release }),
    release,
  );
  return { ...user, emailVerified: true, updatedAt: now };
}

/**
 * The website's confirmation step: like `verifyEmail`, and the same code also starts a sign-in
 * (the registrant just proved the mailbox, as a `login` code would), in the same transaction as
 * the verification.
 */
export async function verifyEmailAndSignIn(
  deps: Deps,
  input: { email: string; code: string },
  proof: RegistrantProof,
): Promise<TokenResponse> {
  const { clock, meta } = deps;
  const { user, codeId, release } = await expectRegistrant(deps, input, proof);
  const now = clock.now();
  const pair = await prepareTokenPair(deps, user.id);
  await spendVerification(
    deps,
    deps.codes.spendForVerification(
      codeId,
      { userId: user.id, type: "email_verified", nowMs: now, meta },
      {
        release,
        signIn: {
          token: pair.row,
          entry: { userId: user.id, type: "login", nowMs: now, meta, details: { method: "verify_email", session_id: pair.row.familyId } },
          signInsValidAfter: user.tokensValidAfter,
        },
      },
    ),
    release,
  );
  return pair.response;
}

/**
 * `POST /auth/login/otp`: a token pair for a `login` code. The code proves the user reads that
 * mailbox, so an unverified email becomes verified here too — and, since the password may have
 * been set by someone else (pre-registration hijacking), that password stops working and every
 * earlier sign-in ends, in the same transaction.
 */
export async function loginWithCode(deps: Deps, input: { email: string; code: string }): Promise<TokenResponse> {
  const { clock, meta } = deps;
  const { user, codeId } = await expectValidCode(deps, "login", input);
  const now = clock.now();
  const pair = await prepareTokenPair(deps, user.id);
  assertSpent(
    await deps.codes.spendForLogin(
      codeId,
      { userId: user.id, type: "login", nowMs: now, meta, details: { method: "otp", session_id: pair.row.familyId } },
      {
        user,
        token: pair.row,
        unusablePasswordHash: UNUSABLE_PASSWORD_HASH,
        verifiedEntry: user.emailVerified
          ? null
          : { userId: user.id, type: "email_verified", nowMs: now, meta, details: { method: "otp" } },
      },
    ),
  );
  return pair.response;
}

/**
 * `POST /auth/password/reset`: sets a new password with a `reset_password` code, ends every
 * session (refresh tokens revoked, access tokens cut off), voids every other code of the account
 * and marks the email verified (the code proves the mailbox). The old password stops working in
 * the same transaction.
 */
export async function resetPassword(deps: Deps, input: { email: string; code: string; new_password: string }): Promise<void> {
  // Checked before the code against what the caller already knows (the email), so a weak
  // password is refused the same way for every address; the username check follows below.
  assertPasswordPolicy(input.new_password, { email: input.email }, "new_password");
  const { user, codeId } = await expectValidCode(deps, "reset_password", input);
  await givingBackIfRefused(deps, codeId, () =>
    assertPasswordPolicy(input.new_password, { email: user.email, username: user.username }, "new_password"),
  );

  const passwordHash = await hashPassword(input.new_password, deps.passwordHasher);
  const now = deps.clock.now();
  assertSpent(
    await deps.codes.spendForReset(
      codeId,
      { userId: user.id, type: "password_reset", nowMs: now, meta: deps.meta },
      { passwordHash, address: user.email },
    ),
  );
}
