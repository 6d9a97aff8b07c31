/**
 * The admin audit trail. Audit entries of account and status changes are written by the store
 * method that makes the change (users.updateFlags, tokens.endAllSessions, statuses.updateContent,
 * statuses.delete); config changes live in KV, which has no transactions, so their entries are
 * written and, on a failed KV write, removed here.
 */
import { desc, eq, inArray } from "drizzle-orm";
import { type Db, runBatch, runOne } from "./driver";
import { adminAudit, users } from "./schema";
import { auditInsert, olderThan } from "./statements";
import type { AuditRecord, PageQuery } from "./types";

export interface AuditRow {
  id: string;
  actorId: string | null;
  actorEmail: string | null;
  createdAt: number;
  action: string;
  target: string;
  oldValue: string | null;
  newValue: string | null;
}

export interface AuditStore {
  /** Writes the entries in one transaction (none when empty). */
  record(entries: AuditRecord[]): Promise<void>;
  /** Removes entries written for a change that was then rolled back. */
  remove(ids: string[]): Promise<void>;
  /** The trail, newest first, with each actor's current email (`limit + 1` rows). */
  page(page: PageQuery): Promise<AuditRow[]>;
}

export function DrizzleAuditStore(db: Db): AuditStore {
  return {
    async record(entries) {
      await runBatch(
        db,
        entries.map((entry) => auditInsert(db, entry)),
      );
    },

    async remove(ids) {
      await runBatch(db, [db.delete(adminAudit).where(inArray(adminAudit.id, ids))]);
    },

    async page(page) {
      const rows = await runOne(
        db
          .select({ entry: adminAudit, actorEmail: users.email })
          .from(adminAudit)
          .leftJoin(users, eq(users.id, adminAudit.actorId))
          .where(olderThan(adminAudit.createdAt, adminAudit.id, page.cursor))
          .orderBy(desc(adminAudit.createdAt), desc(adminAudit.id))
          .limit(page.limit + 1),
      );
      return rows.map(({ entry, actorEmail }) => ({ ...entry, actorEmail }));
    },
  };
}
