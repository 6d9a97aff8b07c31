/**
 * The admin audit trail: who changed what, when, from which value to which. Entries of account
 * changes are written by the store method that makes the change, in the same batch (a user change
 * is never applied unaudited, nor audited without applying). Values are stored as text: raw KV
 * strings for config, small JSON objects for account flags and for staff changes of someone
 * else's status (its author and content before, its content after).
 */
import type { Deps } from "../../deps";
import { type Page, pageRequest, toPage } from "../../lib/pagination";
import type { AuditEntryView } from "./admin.schemas";

export { AUDIT_ACTIONS, type AuditAction } from "../../store";

/** One page of the audit trail, newest first, with a cursor for the next page (or null). */
export async function listAudit(
  deps: Pick<Deps, "audit" | "secrets">,
  input: { limit: number; cursor?: string },
): Promise<Page<AuditEntryView>> {
  const page = await pageRequest(deps.secrets.otpSecret, "admin.audit", input);
  const rows = await deps.audit.page(page);
  return toPage(deps.secrets.otpSecret, "admin.audit", rows, input.limit, (entry) => ({
    id: entry.id,
    actor_id: entry.actorId,
    actor_email: entry.actorEmail,
    created_at: new Date(entry.createdAt).toISOString(),
    action: entry.action,
    target: entry.target,
    old_value: entry.oldValue,
    new_value: entry.newValue,
  }));
}
