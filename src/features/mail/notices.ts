/**
 * Security notices (`email_change_requested`, `email_changed`) are what tells an address's owner
 * that someone is moving their account elsewhere, so they must not be lost. A notice is written
 * with the change it reports, in the same transaction (`pending_notices`), then handed to the
 * queue; the queue consumer removes the row once the mail provider has taken the notice. Until
 * then the row is leased to its queue message for `NOTICE_LEASE_MS` (longer than the consumer's
 * retries take); a notice still there after that — its enqueue failed, the change's reply was
 * lost after it committed, or the provider failed past the queue's retries and it went to the
 * dead-letter queue — is enqueued again by `sendPendingNotices`, after every mail batch the
 * consumer handles and in the daily cron, with a lease that doubles each time. After
 * `NOTICE_GIVE_UP_MS` the cron gives it up, with an error in the log. The provider's idempotency key
 * is the notice's id, so a notice sent twice (its row could not be removed) is delivered once
 * where the provider honours it.
 */
import type { Deps } from "../../deps";
import { randomId } from "../../lib/crypto";
import { loggableError } from "../../lib/errors";
import { log } from "../../lib/log";
import type { PendingNotice } from "../../store";
import { type Notice, type NoticeMail, NoticeMailSchema } from "./mail.messages";

/** How long an enqueued notice is left to its message before it is enqueued again; doubles per attempt. */
export const NOTICE_LEASE_MS = 10 * 60_000;
const NOTICE_MAX_LEASE_MS = 12 * 60 * 60_000;
/** How long a notice is tried at all: a provider down for days is an outage to fix, not to queue for. */
export const NOTICE_GIVE_UP_MS = 3 * 24 * 60 * 60_000;
/** Notices enqueued again per run. */
const NOTICE_RESEND_BATCH = 50;

/**
 * A notice of `notice` to `to` (about `newEmail`, for a move): the row for the change's batch, and
 * `send()` for after it committed.
 */
export function newNotice(
  deps: Pick<Deps, "clock" | "outbox">,
  notice: Notice,
  to: string,
  newEmail?: string,
): { row: PendingNotice; send: () => Promise<void> } {
  const message: NoticeMail = { kind: "notice", notice, to, new_email: newEmail, notice_id: randomId() };
  const now = deps.clock.now();
  const row = { id: message.notice_id, message: JSON.stringify(message), createdAt: now, nextAttemptAt: now + NOTICE_LEASE_MS };
  return {
    row,
    send: async () => {
      await enqueue(deps, message);
    },
  };
}

/** Enqueues one notice; a failure is logged, and its row brings it back when its lease is over. */
async function enqueue(deps: Pick<Deps, "outbox">, message: NoticeMail): Promise<boolean> {
  try {
    await deps.outbox.send(message);
    return true;
  } catch (error) {
    log("error", "mail.notice_pending", { notice: message.notice, error: loggableError(error) });
    return false;
  }
}

/** For the consumer, once the provider took `notice`: nothing left to send. A failure is logged; the notice may then go twice. */
export async function forgetNotice(deps: Pick<Deps, "notices">, notice: NoticeMail): Promise<void> {
  try {
    await deps.notices.remove(notice.notice_id);
  } catch (error) {
    log("warn", "mail.notice_not_forgotten", { notice: notice.notice, error: loggableError(error) });
  }
}

/**
 * Gives up the notices written more than `NOTICE_GIVE_UP_MS` ago, with an error line. Daily, from
 * the cron (a day more or less on three changes nothing): never a statement on every mail batch.
 * Never throws.
 */
export async function abandonStaleNotices(deps: Pick<Deps, "clock" | "notices">): Promise<number> {
  try {
    const abandoned = await deps.notices.abandonOlderThan(deps.clock.now() - NOTICE_GIVE_UP_MS);
    if (abandoned > 0) log("error", "mail.notice_abandoned", { count: abandoned, reason: "not sent within 3 days" });
    return abandoned;
  } catch (error) {
    log("error", "mail.notice_pending", { error: loggableError(error) });
    return 0;
  }
}

/** Enqueues again the notices whose lease is over: one statement claims them. Never throws. */
export async function sendPendingNotices(deps: Pick<Deps, "clock" | "outbox" | "notices">): Promise<{ sent: number; pending: number }> {
  let rows: PendingNotice[] = [];
  try {
    rows = await deps.notices.claimDue(deps.clock.now(), NOTICE_RESEND_BATCH, { baseMs: NOTICE_LEASE_MS, maxMs: NOTICE_MAX_LEASE_MS });
  } catch (error) {
    log("error", "mail.notice_pending", { error: loggableError(error) });
  }
  let sent = 0;
  for (const row of rows) {
    const parsed = NoticeMailSchema.safeParse(safeJson(row.message));
    if (!parsed.success) {
      // Not one this code wrote: dropped, or it would be retried until given up.
      await deps.notices.remove(row.id).catch(() => undefined);
      continue;
    }
    if (await enqueue(deps, parsed.data)) sent++;
  }
  return { sent, pending: rows.length - sent };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
