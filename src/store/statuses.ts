/**
 * Statuses: short public posts. Creating and deleting write the author's activity entry in the
 * same batch; a delete records its entry only if the status still existed when the batch ran.
 * Staff editing or deleting someone else's status write its admin audit entry the same way.
 */
import { and, desc, eq, sql } from "drizzle-orm";
import {
  affectedRows,
  type Db,
  type Placeholders,
  prepared,
  preparedShapes,
  type Query,
  runGuarded,
  runGuardedBatch,
  runOne,
} from "./driver";
import { statuses, users } from "./schema";
import {
  activityInsertSelect,
  auditEntryWhile,
  entryWhileSignedIn,
  isPublicAccount,
  isPublicNow,
  olderThan,
  stillActiveStaff,
} from "./statements";
import type { ActivityRecord, AuditRecord, PageQuery } from "./types";

/** A status with its author's current username. */
export interface StatusRow {
  id: string;
  userId: string;
  username: string | null;
  content: string;
  createdAt: number;
  updatedAt: number;
}

export interface StatusStore {
  /**
   * Publishes the status with its author's entry, while the author's sign-ins are as the request
   * read them (`signInsValidAfter`, see `whileSignInsAsRead`); false, nothing written, once ended.
   */
  create(status: Omit<StatusRow, "username">, activity: ActivityRecord, signInsValidAfter: number): Promise<boolean>;
  /** One status; with `publicOnly`, not when its author is disabled. */
  byId(id: string, options?: { publicOnly?: boolean }): Promise<StatusRow | null>;
  /** The public timeline (enabled authors), newest first, optionally of one author (`limit + 1` rows). */
  page(filter: { userId?: string }, page: PageQuery): Promise<StatusRow[]>;
  /** The user's statuses, public or not (the export, staff), newest first by (time, id) (`limit + 1` rows). */
  byAuthor(userId: string, page: PageQuery): Promise<StatusRow[]>;
  /**
   * `gone` when the status no longer exists. With `audit` (staff, someone else's status), its
   * entry is written in the same batch, its `old_value` the status's author and content as they
   * were then, and only while its actor is still active staff (else `not_staff`, nothing written).
   */
  /** Changes the content with the author's entry (and `audit`, as above); `gone` (nothing written) when it was gone. */
  updateContent(id: string, content: string, activity: ActivityRecord, audit?: AuditRecord): Promise<StatusChange>;
  /** Deletes with the author's entry (and `audit`, as above); `gone` (nothing written) when it was already gone. */
  delete(id: string, activity: ActivityRecord, audit?: AuditRecord): Promise<StatusChange>;
}

export type StatusChange = "done" | "gone" | "not_staff";

const statusColumns = {
  id: statuses.id,
  userId: statuses.userId,
  username: users.username,
  content: statuses.content,
  createdAt: statuses.createdAt,
  updatedAt: statuses.updatedAt,
};

type TimelineValues = { limit: number; userId: string; cursorT: number; cursorId: string };

/** One page of the public timeline, prepared once per isolate for each shape (one author, after a cursor). */
function timelineStatement(byAuthor: boolean, paged: boolean) {
  return prepared((db, p: Placeholders<TimelineValues>) =>
    db
      .select(statusColumns)
      .from(statuses)
      .innerJoin(users, eq(users.id, statuses.userId))
      .where(
        and(
          // A disabled or unverified account's posts leave the public timeline with it (staff can still act on them by id).
          isPublicAccount(),
          // One author's list walks that author's index (read from the account first, a hidden one
          // reads nothing); everyone's walks the public rows only, past hidden authors' posts. The
          // flag only drives that index: the account's own state still decides.
          byAuthor ? eq(statuses.userId, p.userId) : eq(statuses.authorPublic, true),
          paged ? olderThan(statuses.createdAt, statuses.id, { t: p.cursorT, id: p.cursorId }) : undefined,
        ),
      )
      .orderBy(desc(statuses.createdAt), desc(statuses.id))
      .limit(p.limit),
  );
}
const timelinePage = preparedShapes(timelineStatement);

/** SQL: the status exists when the batch runs, so what records a change of it is written only if the change happened. */
const statusExists = (id: string) => sql`EXISTS (SELECT 1 FROM ${statuses} WHERE ${statuses.id} = ${id})`;

/**
 * Staff's entry about someone else's status, written only while it exists, with `old_value` what
 * it says when the batch runs (not what the request read: its author may have edited it since),
 * and the guard of its batch: only while its actor is active staff. Put it before the change.
 */
function statusAuditEntry(db: Db, audit: AuditRecord, id: string) {
  const current = sql`(SELECT json_object('user_id', ${statuses.userId}, 'content', ${statuses.content}) FROM ${statuses} WHERE ${statuses.id} = ${id})`;
  return auditEntryWhile(db, audit, stillActiveStaff(audit.actorId), { where: statusExists(id), oldValue: current });
}

export function DrizzleStatusStore(db: Db): StatusStore {
  const select = () => db.select(statusColumns).from(statuses).innerJoin(users, eq(users.id, statuses.userId));
  /** Runs a change whose last statement returns the status it changed (see `StatusChange`). */
  async function statusChange(batch: (Query | false | undefined)[]): Promise<StatusChange> {
    const results = await runGuardedBatch(db, batch);
    if (!results) return "not_staff";
    return affectedRows(results.at(-1)) > 0 ? "done" : "gone";
  }

  return {
    async create(status, activity, signInsValidAfter) {
      return runGuarded(db, [
        entryWhileSignedIn(db, activity, signInsValidAfter),
        db.insert(statuses).values({ ...status, authorPublic: isPublicNow(status.userId) }),
      ]);
    },

    async byId(id, options = {}) {
      const [row] = await runOne(
        select()
          .where(and(eq(statuses.id, id), options.publicOnly ? isPublicAccount() : undefined))
          .limit(1),
      );
      return row ?? null;
    },

    async page(filter, page) {
      return runOne(
        timelinePage(filter.userId !== undefined, page.cursor !== null)(db, {
          limit: page.limit + 1,
          userId: filter.userId ?? "",
          cursorT: page.cursor?.t ?? 0,
          cursorId: page.cursor?.id ?? "",
        }),
      );
    },

    async byAuthor(userId, page) {
      return runOne(
        select()
          .where(and(eq(statuses.userId, userId), olderThan(statuses.createdAt, statuses.id, page.cursor)))
          .orderBy(desc(statuses.createdAt), desc(statuses.id))
          .limit(page.limit + 1),
      );
    },

    async updateContent(id, content, activity, audit) {
      return statusChange([
        activityInsertSelect(db, activity, { where: statusExists(id) }),
        audit && statusAuditEntry(db, audit, id),
        db.update(statuses).set({ content, updatedAt: activity.nowMs }).where(eq(statuses.id, id)).returning({ id: statuses.id }),
      ]);
    },

    async delete(id, activity, audit) {
      return statusChange([
        activityInsertSelect(db, activity, { where: statusExists(id) }),
        audit && statusAuditEntry(db, audit, id),
        db.delete(statuses).where(eq(statuses.id, id)).returning({ id: statuses.id }),
      ]);
    },
  };
}
