/**
 * Security notices waiting for the mail queue (`pending_notices`, see schema.ts). A notice's row is
 * written by the store method of the change it reports (`pendingNoticeInsert`, in that change's
 * batch), so it exists exactly when the change happened; it is removed once the queue took it.
 */
import { asc, eq, lt } from "drizzle-orm";
import { type Db, runOne } from "./driver";
import { pendingNotices } from "./schema";

/** A notice to keep until the queue has it: its `notice_id`, its queue message as JSON, when. */
export interface PendingNotice {
  id: string;
  message: string;
  createdAt: number;
}

/** The insert of a pending notice, for the batch of the change it reports. */
export function pendingNoticeInsert(db: Db, notice: PendingNotice) {
  return db.insert(pendingNotices).values(notice);
}

export interface NoticeStore {
  /** Notices written before `before`, oldest first, at most `limit`. */
  due(before: number, limit: number): Promise<PendingNotice[]>;
  /** Forgets a notice the queue has taken. */
  remove(id: string): Promise<void>;
}

export function DrizzleNoticeStore(db: Db): NoticeStore {
  return {
    async due(before, limit) {
      return runOne(
        db.select().from(pendingNotices).where(lt(pendingNotices.createdAt, before)).orderBy(asc(pendingNotices.createdAt)).limit(limit),
      );
    },
    async remove(id) {
      await runOne(db.delete(pendingNotices).where(eq(pendingNotices.id, id)));
    },
  };
}
