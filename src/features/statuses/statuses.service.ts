/**
 * Statuses: short public posts. Anyone may read them; only the author or a staff user may change
 * or delete one. Creating and deleting are recorded in the author's activity in the same batch as
 * the change itself; staff editing or deleting someone else's status, in the admin audit trail too.
 */
import type { z } from "@hono/zod-openapi";
import type { Deps } from "../../deps";
import { randomId } from "../../lib/crypto";
import { AppError, signInEnded, staffOnly } from "../../lib/errors";
import { keysetPages, type Page, pageRequest, toPage } from "../../lib/pagination";
import { assertWithinLimit } from "../../lib/rate-limit";
import type { ActivityRecord, AuditAction, AuditRecord, StatusChange, StatusRow, User } from "../../store";
import type { StatusSchema } from "./statuses.schemas";

/** A status as the API shows it: the author's current username comes from the users table. */
export type StatusView = z.infer<typeof StatusSchema>;

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

const noSuchStatus = () => new AppError("not_found", "No such status.");

/**
 * The status `user` may change: their own, or any for staff. Anyone else gets 403 for a public
 * status and 404 for one out of public view (a disabled or unverified author's), as its GET
 * answers: the refusal must not tell that a hidden status still exists.
 */
async function changeableStatus(deps: Pick<Deps, "statuses">, user: User, id: string): Promise<StatusRow> {
  const row = await deps.statuses.byId(id);
  if (!row) throw noSuchStatus();
  if (row.userId === user.id || user.isStaff) return row;
  if (!(await deps.statuses.byId(id, { publicOnly: true }))) throw noSuchStatus();
  throw new AppError("forbidden", "Only the author or staff may change this status.");
}

/**
 * The admin audit entry of `user` changing `status`, when that is a staff action on someone
 * else's status (`changeableStatus` lets no one else near it); none for the author's own change.
 * It keeps whose status it was and what it said, which the status itself no longer tells: the
 * store reads that (`old_value`) in the write's own batch, since the author may edit it meanwhile.
 */
function staffAudit(user: User, status: StatusRow, action: AuditAction, newValue: string | null, nowMs: number): AuditRecord | undefined {
  if (status.userId === user.id || !user.isStaff) return undefined;
  return { actorId: user.id, action, target: status.id, oldValue: null, newValue, nowMs };
}

/**
 * The answer to a change that did not land: the status was deleted meanwhile (404), or its staff
 * author was demoted or disabled while the request was under way (403).
 */
function assertLanded(outcome: StatusChange): void {
  if (outcome === "gone") throw noSuchStatus();
  if (outcome === "not_staff") throw staffOnly();
}

/** Publishes a status for `user`; at most `statusCreatePerUser` a minute (429 beyond). */
export async function createStatus(deps: Deps, user: User, content: string): Promise<StatusView> {
  const { clock, meta } = deps;
  const now = clock.now();
  assertWithinLimit("statusCreatePerUser", await deps.counters.hit("statusCreatePerUser", user.id, now), now);
  const row = { id: randomId(), userId: user.id, content, createdAt: now, updatedAt: now };
  const entry = { userId: user.id, type: "status_created" as const, nowMs: now, meta, details: { status_id: row.id } };
  if (!(await deps.statuses.create(row, entry, user.tokensValidAfter))) throw signInEnded();
  return statusView({ ...row, username: user.username });
}

/** Public list, newest first, optionally of one author; `cursor` is the previous page's `next_cursor`. */
export async function listStatuses(
  deps: Pick<Deps, "statuses" | "secrets">,
  query: { userId?: string; limit?: number; cursor?: string },
): Promise<Page<StatusView>> {
  const page = await pageRequest(deps.secrets.otpSecret, "statuses", query);
  const rows = await deps.statuses.page({ userId: query.userId }, page);
  return toPage(deps.secrets.otpSecret, "statuses", rows, page.limit, statusView);
}

/** The public read: a disabled account's statuses are gone from it, as from the list. */
export async function getStatus(deps: Pick<Deps, "statuses">, id: string): Promise<StatusView> {
  const row = await deps.statuses.byId(id, { publicOnly: true });
  if (!row) throw noSuchStatus();
  return statusView(row);
}

/**
 * Changes the content (author or staff only). `content` undefined (an empty PATCH) changes
 * nothing but still checks existence and permission, so it answers what a real edit would.
 */
export async function updateStatus(deps: Deps, user: User, id: string, content: string | undefined): Promise<StatusView> {
  const status = await changeableStatus(deps, user, id);
  if (content === undefined || content === status.content) return statusView(status);
  const now = deps.clock.now();
  const audit = staffAudit(user, status, "status.update", JSON.stringify({ content }), now);
  // Deleted by someone else between the read and the write.
  assertLanded(await deps.statuses.updateContent(id, content, authorEntry(deps, user, status, "status_updated", now), audit));
  return statusView({ ...status, content, updatedAt: now });
}

/**
 * The author's entry for a change to their status. When staff changed someone else's it says
 * `by: "staff"` and carries no IP or user agent: the author's history should tell them what
 * happened, not where the moderator was. Never the content.
 */
function authorEntry(
  deps: Pick<Deps, "meta">,
  user: User,
  status: StatusRow,
  type: "status_updated" | "status_deleted",
  nowMs: number,
): ActivityRecord {
  const byStaff = status.userId !== user.id;
  return {
    userId: status.userId,
    type,
    nowMs,
    meta: byStaff ? { ip: null, userAgent: null } : deps.meta,
    details: byStaff ? { status_id: status.id, by: "staff" } : { status_id: status.id },
  };
}

/** Deletes a status (author or staff only) and records `status_deleted` on the author (`authorEntry`). */
export async function deleteStatus(deps: Deps, user: User, id: string): Promise<void> {
  const status = await changeableStatus(deps, user, id);
  const now = deps.clock.now();
  const outcome = await deps.statuses.delete(
    id,
    authorEntry(deps, user, status, "status_deleted", now),
    staffAudit(user, status, "status.delete", null, now),
  );
  assertLanded(outcome);
}

/** Every status of the user, public or not, newest first, `pageSize` at a time (for the data export). */
export async function* statusPages(deps: Pick<Deps, "statuses">, userId: string, pageSize: number): AsyncGenerator<StatusView[]> {
  for await (const rows of keysetPages((page) => deps.statuses.byAuthor(userId, page), pageSize)) yield rows.map(statusView);
}

/**
 * The newest `limit` statuses of a user for staff, also while the account is out of public view
 * (disabled or unverified), when its posts may be what staff came to moderate.
 */
export async function newestStatusesOf(deps: Pick<Deps, "statuses">, userId: string, limit: number): Promise<StatusView[]> {
  const rows = await deps.statuses.byAuthor(userId, { limit, cursor: null });
  return rows.slice(0, limit).map(statusView);
}
