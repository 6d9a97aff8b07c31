/**
 * Statuses: short public posts. Anyone may read them; only the author or a staff user may change
 * or delete one. Creating and deleting are recorded in the author's activity in the same batch as
 * the change itself.
 */
import { and, desc, eq, sql } from "drizzle-orm";
import { runBatch } from "../../db/client";
import { statuses, type User, users } from "../../db/schema";
import type { Deps } from "../../env";
import { randomId } from "../../lib/crypto";
import { AppError } from "../../lib/errors";
import { olderThan, type Page, pageRequest, toPage } from "../../lib/pagination";
import { enforceRateLimit } from "../../lib/rate-limit";
import { activityInsert, activityInsertIf } from "../activity/activity.record";

/** A status as the API shows it: the author's current username comes from the users table. */
export interface StatusView {
  id: string;
  user_id: string;
  username: string | null;
  content: string;
  created_at: string;
  updated_at: string;
}

interface StatusRow {
  id: string;
  userId: string;
  username: string | null;
  content: string;
  createdAt: number;
  updatedAt: number;
}

export function statusView(row: StatusRow): StatusView {
  return {
    id: row.id,
    user_id: row.userId,
    username: row.username,
    content: row.content,
    created_at: new Date(row.createdAt).toISOString(),
    updated_at: new Date(row.updatedAt).toISOString(),
  };
}

const statusColumns = {
  id: statuses.id,
  userId: statuses.userId,
  username: users.username,
  content: statuses.content,
  createdAt: statuses.createdAt,
  updatedAt: statuses.updatedAt,
};

function selectStatuses(deps: Pick<Deps, "db">) {
  return deps.db.select(statusColumns).from(statuses).innerJoin(users, eq(users.id, statuses.userId));
}

async function findStatus(deps: Pick<Deps, "db">, id: string): Promise<StatusRow> {
  const [row] = await selectStatuses(deps).where(eq(statuses.id, id)).limit(1);
  if (!row) throw new AppError("not_found", "No such status.");
  return row;
}

function assertMayChange(user: User, status: StatusRow) {
  if (status.userId !== user.id && !user.isStaff) {
    throw new AppError("forbidden", "Only the author or staff may change this status.");
  }
}

/** Publishes a status for `user`; at most `statusCreatePerUser` a minute (429 beyond). */
export async function createStatus(deps: Deps, user: User, content: string): Promise<StatusView> {
  const { db, clock, meta } = deps;
  const now = clock.now();
  await enforceRateLimit(db, "statusCreatePerUser", user.id, now);
  const row = { id: randomId(), userId: user.id, content, createdAt: now, updatedAt: now };
  await runBatch(db, [
    db.insert(statuses).values(row),
    activityInsert(db, { userId: user.id, type: "status_created", nowMs: now, meta, details: { status_id: row.id } }),
  ]);
  return statusView({ ...row, username: user.username });
}

/** Public list, newest first, optionally of one author; `cursor` is the previous page's `next_cursor`. */
export async function listStatuses(
  deps: Pick<Deps, "db" | "env">,
  query: { userId?: string; limit?: number; cursor?: string },
): Promise<Page<StatusView>> {
  const { limit, cursor } = await pageRequest(deps.env.OTP_SECRET, query);
  const rows = await selectStatuses(deps)
    .where(
      and(
        // A disabled account's posts leave the public timeline with it (staff can still act on them by id).
        eq(users.isActive, true),
        query.userId === undefined ? undefined : eq(statuses.userId, query.userId),
        olderThan(statuses.createdAt, statuses.id, cursor),
      ),
    )
    .orderBy(desc(statuses.createdAt), desc(statuses.id))
    .limit(limit + 1);
  return toPage(deps.env.OTP_SECRET, rows, limit, statusView);
}

/** The public read: a disabled account's statuses are gone from it, as from the list. */
export async function getStatus(deps: Pick<Deps, "db">, id: string): Promise<StatusView> {
  const [row] = await selectStatuses(deps)
    .where(and(eq(statuses.id, id), eq(users.isActive, true)))
    .limit(1);
  if (!row) throw new AppError("not_found", "No such status.");
  return statusView(row);
}

/**
 * Changes the content (author or staff only). `content` undefined (an empty PATCH) changes
 * nothing but still checks existence and permission, so it answers what a real edit would.
 */
export async function updateStatus(deps: Deps, user: User, id: string, content: string | undefined): Promise<StatusView> {
  const status = await findStatus(deps, id);
  assertMayChange(user, status);
  if (content === undefined || content === status.content) return statusView(status);
  const now = deps.clock.now();
  const updated = await deps.db.update(statuses).set({ content, updatedAt: now }).where(eq(statuses.id, id)).returning({ id: statuses.id });
  // Deleted by someone else between the read and the write.
  if (updated.length === 0) throw new AppError("not_found", "No such status.");
  return statusView({ ...status, content, updatedAt: now });
}

/**
 * Deletes a status (author or staff only) and records `status_deleted` on the author. When staff
 * removes someone else's status the entry says `by: "staff"` and carries no IP or user agent:
 * the author's history should tell them what happened, not where the moderator was.
 */
export async function deleteStatus(deps: Deps, user: User, id: string): Promise<void> {
  const { db, clock } = deps;
  const status = await findStatus(deps, id);
  assertMayChange(user, status);
  const byStaff = status.userId !== user.id;
  const now = clock.now();
  const [, deleted] = await runBatch(db, [
    activityInsertIf(
      db,
      {
        userId: status.userId,
        type: "status_deleted",
        nowMs: now,
        meta: byStaff ? { ip: null, userAgent: null } : deps.meta,
        details: byStaff ? { status_id: id, by: "staff" } : { status_id: id },
      },
      sql`EXISTS (SELECT 1 FROM ${statuses} WHERE ${statuses.id} = ${id})`,
    ),
    db.delete(statuses).where(eq(statuses.id, id)).returning({ id: statuses.id }),
  ]);
  if (!Array.isArray(deleted) || deleted.length === 0) throw new AppError("not_found", "No such status.");
}

/** Every status of the user, newest first (for the data export). */
export async function allStatuses(deps: Pick<Deps, "db">, userId: string): Promise<StatusView[]> {
  const rows = await selectStatuses(deps).where(eq(statuses.userId, userId)).orderBy(desc(statuses.createdAt), desc(statuses.id));
  return rows.map(statusView);
}
