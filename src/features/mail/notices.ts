/**
 * Security notices (`email_change_requested`, `email_changed`) are what tells an address's owner
 * that someone is moving their account elsewhere, so they must not be lost. A notice is written
 * with the change it reports, in the same transaction (`pending_notices`), then handed to the
 * queue; the row is removed once the queue has it. If the enqueue fails, or the change's reply
 * is lost after it committed, the row stays, and `sendPendingNotices` sends it later: after every
 * mail batch the consumer handles and in the daily cron. The provider's idempotency key is the
 * notice's id, so a notice sent twice (its row could not be removed) is delivered once where the
 * provider honours it.
 */
import type { Deps } from "../../deps";
import { randomId } from "../../lib/crypto";
import { loggableError } from "../../lib/errors";
import { log } from "../../lib/log";
import type { PendingNotice } from "../../store";
import { type Notice, type NoticeMail, NoticeMailSchema } from "./mail.messages";

/** How old a pending notice must be before it is sent from the table: the request that wrote it has long finished. */
export const NOTICE_RESEND_AFTER_MS = 5 * 60_000;
/** Notices sent from the table per run. */
const NOTICE_RESEND_BATCH = 50;

/**
 * A notice of `notice` to `to` about `newEmail`: the row for the change's batch, and `send()` for
 * after it committed.
 */
export function newNotice(
  deps: Pick<Deps, "clock" | "outbox" | "notices">,
  notice: Notice,
  to: string,
  newEmail: string,
): { row: PendingNotice; send: () => Promise<void> } {
  const message: NoticeMail = { kind: "notice", notice, to, new_email: newEmail, notice_id: randomId() };
  const row = { id: message.notice_id, message: JSON.stringify(message), createdAt: deps.clock.now() };
  return {
    row,
    send: async () => {
      await deliver(deps, row.id, message);
    },
  };
}

/** Enqueues one notice and forgets its row; a failure is logged and the row kept for a later run. */
async function deliver(deps: Pick<Deps, "outbox" | "notices">, id: string, message: NoticeMail): Promise<boolean> {
  try {
    await deps.outbox.send(message);
  } catch (error) {
    log("error", "mail.notice_pending", { notice: message.notice, error: loggableError(error) });
    return false;
  }
  try {
    await deps.notices.remove(id);
  } catch (error) {
    log("warn", "mail.notice_not_forgotten", { notice: message.notice, error: loggableError(error) });
  }
  return true;
}

/** Sends the notices whose enqueue failed or whose change's reply was lost. Never throws. */
export async function sendPendingNotices(deps: Pick<Deps, "clock" | "outbox" | "notices">): Promise<{ sent: number; pending: number }> {
  let rows: PendingNotice[];
  try {
    rows = await deps.notices.due(deps.clock.now() - NOTICE_RESEND_AFTER_MS, NOTICE_RESEND_BATCH);
  } catch (error) {
    log("error", "mail.notice_pending", { error: loggableError(error) });
    return { sent: 0, pending: 0 };
  }
  let sent = 0;
  for (const row of rows) {
    const parsed = NoticeMailSchema.safeParse(safeJson(row.message));
    if (!parsed.success) {
      // Not one this code wrote: dropped, or it would be retried forever.
      await deps.notices.remove(row.id).catch(() => undefined);
      continue;
    }
    if (await deliver(deps, row.id, parsed.data)) sent++;
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
