/** Reading a user's own activity history (the activity center). */
import type { z } from "@hono/zod-openapi";
import type { Deps } from "../../deps";
import { type Page, pageRequest, splitPage, toPage } from "../../lib/pagination";
import type { ActivityType, Cursor, StoredActivity } from "../../store";
import type { ActivityEntrySchema } from "./activity.schemas";

export type ActivityView = z.infer<typeof ActivityEntrySchema>;

/** `details` is stored as JSON text; anything that is not a JSON object shows as `{}`. */
function parseDetails(text: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export function activityView(entry: StoredActivity): ActivityView {
  return {
    id: entry.id,
    type: entry.type,
    created_at: new Date(entry.createdAt).toISOString(),
    ip: entry.ip,
    user_agent: entry.userAgent,
    details: parseDetails(entry.details),
  };
}

/**
 * The user's own entries, newest first, optionally of one type. The user id always comes from
 * the access token, so nobody can page through someone else's history.
 */
export async function listActivity(
  deps: Pick<Deps, "activity" | "secrets">,
  userId: string,
  query: { type?: ActivityType; limit?: number; cursor?: string },
): Promise<Page<ActivityView>> {
  const page = await pageRequest(deps.secrets.otpSecret, "activity", query);
  const rows = await deps.activity.page(userId, { type: query.type }, page);
  return toPage(deps.secrets.otpSecret, "activity", rows, page.limit, activityView);
}

/**
 * Every entry of the user, newest first, `pageSize` at a time (for the data export): the same
 * keyset query as the activity list, so each entry comes once and in the list's order even while
 * new entries are written (they are newer than any cursor) or old ones purged between pages.
 */
export async function* activityPages(deps: Pick<Deps, "activity">, userId: string, pageSize: number): AsyncGenerator<ActivityView[]> {
  let cursor: Cursor | null = null;
  do {
    const rows: StoredActivity[] = await deps.activity.page(userId, {}, { limit: pageSize, cursor });
    const { kept, next } = splitPage(rows, pageSize);
    yield kept.map(activityView);
    cursor = next;
  } while (cursor);
}
