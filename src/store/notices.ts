/**
 * Security notices waiting to be sent (`pending_notices`, see schema.ts). A notice's row is
 * written by the store method of the change it reports (`pendingNoticeInsert`, in that change's
 * batch), so it exists exactly when the change happened; it is removed once the notice was sent.
 */
import { and, asc, eq, inArray, lt, lte, type SQL, sql } from "drizzle-orm";
import { type Db, runOne } from "./driver";
import { pendingNotices } from "./schema";

/** A notice to keep until it is sent: its `notice_id`, its queue message as JSON, when, and when it is next due. */
export interface PendingNotice {
  id: string;
  message: string;
  createdAt: number;
  /** Until then the notice is on its way (enqueued after its change); afterwards it is due again. */
  nextAttemptAt: number;
}

/** The insert of a pending notice, for the batch of the change it reports. */
export function pendingNoticeInsert(db: Db, notice: PendingNotice) {
  return db.insert(pendingNotices).values(notice);
}

/** `pendingNoticeInsert`, only while `when` holds as the statement runs. */
export function pendingNoticeInsertWhile(db: Db, notice: PendingNotice, when: SQL) {
  // drizzle lists every column in table order for INSERT … SELECT: id, message, created_at, next_attempt_at, attempts.
  return db
    .insert(pendingNotices)
    .select(sql`SELECT ${notice.id}, ${notice.message}, ${notice.createdAt}, ${notice.nextAttemptAt}, 0 WHERE ${when}`);
}

/** How long a claimed notice is left to its queue message: `baseMs` doubled per earlier attempt, at most `maxMs`. */
export interface NoticeLease {
  baseMs: number;
  maxMs: number;
}

export interface NoticeStore {
  /**
   * Claims up to `limit` notices due at `nowMs`, the longest due first: in the same statement each
   * gets its attempt counted and a new lease, so two runs at once never claim the same notice, and
   * one that is not sent (its removal failing, say) comes due again only when its lease is over.
   */
  claimDue(nowMs: number, limit: number, lease: NoticeLease): Promise<PendingNotice[]>;
  /** Forgets a notice that was sent (or can never be). */
  remove(id: string): Promise<void>;
  /** Deletes the notices written before `before` (given up); returns how many. */
  abandonOlderThan(before: number): Promise<number>;
}

export function DrizzleNoticeStore(db: Db): NoticeStore {
  return {
    async claimDue(nowMs, limit, lease) {
      const due = db
        .select({ id: pendingNotices.id })
        .from(pendingNotices)
        .where(lte(pendingNotices.nextAttemptAt, nowMs))
        .orderBy(asc(pendingNotices.nextAttemptAt))
        .limit(limit);
      // 2^20 × the base is far past any maximum; the cap keeps the product inside 64 bits.
      const leaseMs = sql`min(${lease.baseMs} * (1 << min(${pendingNotices.attempts}, 20)), ${lease.maxMs})`;
      return runOne(
        db
          .update(pendingNotices)
          .set({ attempts: sql`${pendingNotices.attempts} + 1`, nextAttemptAt: sql`${nowMs} + ${leaseMs}` })
          .where(and(inArray(pendingNotices.id, due), lte(pendingNotices.nextAttemptAt, nowMs)))
          .returning({
            id: pendingNotices.id,
            message: pendingNotices.message,
            createdAt: pendingNotices.createdAt,
            nextAttemptAt: pendingNotices.nextAttemptAt,
          }),
      );
    },
    async remove(id) {
      await runOne(db.delete(pendingNotices).where(eq(pendingNotices.id, id)));
    },
    async abandonOlderThan(before) {
      const gone = await runOne(db.delete(pendingNotices).where(lt(pendingNotices.createdAt, before)).returning({ id: pendingNotices.id }));
      return gone.length;
    },
  };
}
