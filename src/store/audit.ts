/**
 * The admin audit trail. Audit entries of account and status changes are written by the store
 * method that makes the change (users.updateFlags, tokens.endAllSessions, statuses.updateContent,
 * statuses.delete); config changes live in KV, which has no transactions, so their entries are
 * written and, on a failed KV write, removed here.
 */
import { and, desc, eq, gt, inArray, notExists, or, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/sqlite-core";
import { type Db, runBatch, runGuarded, runOne } from "./driver";
import { adminAudit, users } from "./schema";
import { auditEntryWhile, olderThan, startsWith, stillActiveStaff } from "./statements";
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
  /**
   * Writes the entries (of staff actions) in one transaction while each one's actor is still
   * active staff; false, and nothing written, when one is no longer. True for none.
   */
  record(entries: AuditRecord[]): Promise<boolean>;
  /** Removes entries written for a change that was then rolled back. */
  remove(ids: string[]): Promise<void>;
  /** The trail, newest first, with each actor's current email (`limit + 1` rows). */
  page(page: PageQuery): Promise<AuditRow[]>;
  /**
   * For each of `keys`, the value its newest config entry (`config.*`, in the trail's order) set:
   * null for a key reset to its default, absent for a key the trail never changed.
   */
  newestConfigValues(keys: string[]): Promise<Map<string, string | null>>;
}

export function DrizzleAuditStore(db: Db): AuditStore {
  return {
    async record(entries) {
      return runGuarded(
        db,
        entries.map((entry) => auditEntryWhile(db, entry, stillActiveStaff(entry.actorId))),
      );
    },

    async remove(ids) {
      await runBatch(db, [db.delete(adminAudit).where(inArray(adminAudit.id, ids))]);
    },

    async page(page) {
      const rows = await runOne(
        db
          // The actor's address now, or the one recorded with the entry once their account is gone.
          .select({ entry: adminAudit, actorEmail: sql<string | null>`coalesce(${users.email}, ${adminAudit.actorEmail})` })
          .from(adminAudit)
          .leftJoin(users, eq(users.id, adminAudit.actorId))
          .where(olderThan(adminAudit.createdAt, adminAudit.id, page.cursor))
          .orderBy(desc(adminAudit.createdAt), desc(adminAudit.id))
          .limit(page.limit + 1),
      );
      return rows.map(({ entry, actorEmail }) => ({ ...entry, actorEmail }));
    },

    async newestConfigValues(keys) {
      if (keys.length === 0) return new Map();
      const newer = alias(adminAudit, "newer");
      const isConfig = (action: typeof adminAudit.action | typeof newer.action) => startsWith(action, "config.");
      const rows = await runOne(
        db
          .select({ key: adminAudit.target, value: adminAudit.newValue })
          .from(adminAudit)
          .where(
            and(
              inArray(adminAudit.target, keys),
              isConfig(adminAudit.action),
              notExists(
                db
                  .select({ one: sql`1` })
                  .from(newer)
                  .where(
                    and(
                      eq(newer.target, adminAudit.target),
                      isConfig(newer.action),
                      or(
                        gt(newer.createdAt, adminAudit.createdAt),
                        and(eq(newer.createdAt, adminAudit.createdAt), gt(newer.id, adminAudit.id)),
                      ),
                    ),
                  ),
              ),
            ),
          ),
      );
      return new Map(rows.map((row) => [row.key, row.value]));
    },
  };
}
