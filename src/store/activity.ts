/**
 * The activity history. Entries that describe a change are written by the store method that makes
 * the change, in the same batch; this store writes standalone entries and reads the history.
 */
import { and, desc, eq, inArray, lt, sql } from "drizzle-orm";
import { affectedRows, type Db, runBatch, runOne } from "./driver";
import { activity, users } from "./schema";
import { activityInsertSelect, olderThan } from "./statements";
import type { ActivityRecord, ActivityType, PageQuery, StoredActivity } from "./types";

export interface ActivityStore {
  /**
   * Writes one entry on its own (a failed re-authentication), while its account exists: one
   * deleted meanwhile leaves nothing to record it for (and its foreign key would fail the write).
   */
  record(entry: ActivityRecord): Promise<void>;
  /**
   * The user's entries, newest first by (time, id), optionally of one type (`limit + 1` rows).
   * The only read of a history: the export walks it page by page too, as a whole one is unbounded.
   */
  page(userId: string, filter: { type?: ActivityType }, page: PageQuery): Promise<StoredActivity[]>;
  /** Deletes up to `limit` entries older than `cutoffMs`; returns how many. */
  purgeOlderThan(cutoffMs: number, limit: number): Promise<number>;
}

export function DrizzleActivityStore(db: Db): ActivityStore {
  return {
    async record(entry) {
      const accountExists = sql`EXISTS (SELECT 1 FROM ${users} WHERE ${eq(users.id, entry.userId)})`;
      await runBatch(db, [activityInsertSelect(db, entry, { where: accountExists })]);
    },

    async page(userId, filter, page) {
      return runOne(
        db
          .select()
          .from(activity)
          .where(
            and(
              eq(activity.userId, userId),
              filter.type === undefined ? undefined : eq(activity.type, filter.type),
              olderThan(activity.createdAt, activity.id, page.cursor),
            ),
          )
          .orderBy(desc(activity.createdAt), desc(activity.id))
          .limit(page.limit + 1),
      );
    },

    async purgeOlderThan(cutoffMs, limit) {
      const result = await runOne(
        db
          .delete(activity)
          .where(inArray(activity.id, db.select({ id: activity.id }).from(activity).where(lt(activity.createdAt, cutoffMs)).limit(limit)))
          .run(),
      );
      return affectedRows(result);
    },
  };
}
