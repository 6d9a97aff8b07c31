/**
 * Account management for staff: search, inspect, change the three account flags, end every
 * session. Disabling an account, or marking its address unverified, revokes its refresh tokens and
 * cuts off its access tokens in the same D1 batch as the flag change and its audit entry, so a
 * disabled user keeps no way in, and an unverified one no sign-in it could not make now.
 * Marking an unverified address verified ends the password set at registration the same way.
 */
import type { Deps } from "../../deps";
import { AppError, lastStaff, staffOnly } from "../../lib/errors";
import { pageRequest, toPage } from "../../lib/pagination";
import { normalizeIdentifier } from "../../lib/text";
import type { User } from "../../store";
import { userView } from "../auth/auth.service";
import { UNUSABLE_PASSWORD_HASH } from "../auth/password-hash";
import { sessionLifetimes } from "../auth/tokens.service";
import { purgeAvatarCopies } from "../profiles/avatar.service";
import type { AdminUserView, UserFlagsPatch } from "./admin.schemas";

/** What staff see of an account: the public view plus bookkeeping. */
export function adminUserView(user: User): AdminUserView {
  return {
    ...userView(user),
    updated_at: new Date(user.updatedAt).toISOString(),
    tokens_valid_after: user.tokensValidAfter > 0 ? new Date(user.tokensValidAfter).toISOString() : null,
  };
}

/** Accounts whose email or username starts with `q` (canonicalised like stored identifiers), newest first. */
export async function searchUsers(deps: Deps, input: { q?: string; limit: number; cursor?: string }) {
  const page = await pageRequest(deps.secrets.otpSecret, "admin.users", input);
  const rows = await deps.users.search(input.q ? normalizeIdentifier(input.q) : "", page);
  return toPage(deps.secrets.otpSecret, "admin.users", rows, page.limit, adminUserView);
}

async function findUser(deps: Deps, id: string): Promise<User> {
  const user = await deps.users.byId(id);
  if (!user) throw noSuchAccount();
  return user;
}

const noSuchAccount = () => new AppError("not_found", "No account with this id.");

/** One account, with how many sign-ins (refresh-token families) are still live. */
export async function getUser(deps: Deps, id: string) {
  const user = await findUser(deps, id);
  const lifetimes = sessionLifetimes(await deps.config());
  return { ...adminUserView(user), active_sessions: await deps.tokens.countLiveSessions(id, deps.clock.now(), lifetimes) };
}

/**
 * Changes account flags. A staff user may not clear their own staff flag, disable themselves or
 * mark their own address unverified (409 conflict: the last ends every sign-in and bars password
 * sign-in until a code comes through), and no change may leave no active staff account (409 last_staff): the store
 * checks that in the change's own transaction, so two staff demoting each other at once cannot
 * both succeed. Either would lock everyone out of the admin API and console.
 */
export async function updateUserFlags(deps: Deps, actor: User, id: string, patch: UserFlagsPatch) {
  if (Object.keys(patch).length === 0) throw new AppError("validation_failed", "Give at least one of is_active, is_staff, email_verified.");
  if (id === actor.id && (patch.is_staff === false || patch.is_active === false || patch.email_verified === false)) {
    throw new AppError(
      "conflict",
      "You cannot remove your own staff flag, disable your own account or mark your own address unverified; ask another staff member.",
    );
  }
  const { clock } = deps;
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
  if (Object.keys(newValues).length === 0) {
    // Perhaps the retry of a change that committed but whose answer was lost: out of public view,
    // its avatar's cached copy must be gone too.
    if (!user.isActive || !user.emailVerified) await purgeAvatarCopies(deps, id);
    return getUser(deps, id);
  }

  const now = clock.now();
  // Disabling also ends every session in the same transaction: a disabled user keeps no way in.
  // So does marking the address unverified: while verification is required, such an account
  // cannot sign in, and its earlier sign-ins must not outlast that.
  // Marking an address verified is proof by someone other than whoever registered it, so, as
  // after a code sign-in, their password and sign-ins end (README, Security: email ownership).
  const outcome = await deps.users.updateFlags(
    id,
    { isActive: newValues.is_active, isStaff: newValues.is_staff, emailVerified: newValues.email_verified },
    now,
    {
      actorId: actor.id,
      action: "user.update",
      target: id,
      oldValue: JSON.stringify(oldValues),
      newValue: JSON.stringify(newValues),
      nowMs: now,
    },
    newValues.email_verified === true
      ? {
          unusablePasswordHash: UNUSABLE_PASSWORD_HASH,
          activity: { userId: id, type: "email_verified", nowMs: now, meta: { ip: null, userAgent: null }, details: { method: "admin" } },
        }
      : undefined,
  );
  switch (outcome) {
    case "applied":
      break;
    case "last_staff":
      throw lastStaff();
    case "changed":
      throw new AppError("conflict", "The account changed while this request was under way; reload it and try again.");
    case "not_staff":
      throw staffOnly();
    case "gone":
      throw noSuchAccount();
  }
  // A disabled or unverified account leaves public view: its cached avatar must stop answering.
  if (newValues.is_active === false || newValues.email_verified === false) await purgeAvatarCopies(deps, id);
  return getUser(deps, id);
}

/** Ends every session of the account: refresh tokens revoked, access tokens issued so far refused. */
export async function adminLogoutAll(deps: Deps, actor: User, id: string): Promise<void> {
  await findUser(deps, id);
  const now = deps.clock.now();
  const ended = await deps.tokens.endAllSessions(id, {
    reason: "admin",
    nowMs: now,
    // The user's history says staff did it, without showing them the staff member's address.
    activity: { userId: id, type: "logout_all", nowMs: now, meta: { ip: null, userAgent: null }, details: { by: "admin" } },
    audit: { actorId: actor.id, action: "user.logout_all", target: id, oldValue: null, newValue: null, nowMs: now },
  });
  if (!ended) {
    await findUser(deps, id); // 404 when the account was deleted meanwhile
    throw staffOnly(); // else its caller was demoted or disabled meanwhile
  }
}
