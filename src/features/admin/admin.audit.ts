/**
 * The admin audit trail: who changed what, when, from which value to which. Like activity
 * entries, `auditInsert` returns a query so the entry is written in the same D1 batch as the
 * change it records (a user change is never applied unaudited, nor audited without applying).
 * Values are stored as text: raw KV strings for config, small JSON objects for account flags.
 */
import { desc, eq, inArray } from "drizzle-orm";
import type { Db } from "../../db/client";
import { adminAudit, users } from "../../db/schema";
import type { Deps } from "../../env";
import { randomId } from "../../lib/crypto";
import { olderThan, type Page, pageRequest, toPage } from "../../lib/pagination";

export const AUDIT_ACTIONS = ["config.set", "config.delete", "user.update", "user.logout_all"] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export function auditInsert(
  db: Db,
  entry: {
    id?: string;
    actorId: string;
    action: AuditAction;
    target: string;
    oldValue: string | null;
    newValue: string | null;
    nowMs: number;
  },
) {
  return db.insert(adminAudit).values({
    id: entry.id ?? randomId(),
    actorId: entry.actorId,
    createdAt: entry.nowMs,
    action: entry.action,
    target: entry.target,
    oldValue: entry.oldValue,
    newValue: entry.newValue,
  });
}

/** Removes entries written for a change that was then rolled back (see patchConfig). */
export function deleteAuditEntries(db: Db, ids: string[]) {
  return db.delete(adminAudit).where(inArray(adminAudit.id, ids));
}

export interface AuditEntryView {
  id: string;
  actor_id: string | null;
  actor_email: string | null;
  created_at: string;
  action: string;
  target: string;
  old_value: string | null;
  new_value: string | null;
}

/** One page of the audit trail, newest first, with a cursor for the next page (or null). */
export async function listAudit(deps: Deps, input: { limit: number; cursor?: string }): Promise<Page<AuditEntryView>> {
  const { limit, cursor } = await pageRequest(deps.env.OTP_SECRET, input);
  const rows = await deps.db
    .select({ entry: adminAudit, actorEmail: users.email })
    .from(adminAudit)
    .leftJoin(users, eq(users.id, adminAudit.actorId))
    .where(olderThan(adminAudit.createdAt, adminAudit.id, cursor))
    .orderBy(desc(adminAudit.createdAt), desc(adminAudit.id))
    .limit(limit + 1);
  return toPage(
    deps.env.OTP_SECRET,
    rows,
    input.limit,
    ({ entry, actorEmail }) => ({
      id: entry.id,
      actor_id: entry.actorId,
      actor_email: actorEmail,
      created_at: new Date(entry.createdAt).toISOString(),
      action: entry.action,
      target: entry.target,
      old_value: entry.oldValue,
      new_value: entry.newValue,
    }),
    ({ entry }) => ({ t: entry.createdAt, id: entry.id }),
  );
}
