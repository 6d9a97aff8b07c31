/** Reading a user's own activity history (the activity center). */
import type { z } from "@hono/zod-openapi";
import type { Deps } from "../../deps";
import { keysetPages, type Page, pageRequest, toPage } from "../../lib/pagination";
import type { ActivityType, StoredActivity } from "../../store";
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

/** Every entry of the user, newest first, `pageSize` at a time (for the data export), by the activity list's own query. */
export async function* activityPages(deps: Pick<Deps, "activity">, userId: string, pageSize: number): AsyncGenerator<ActivityView[]> {
  for await (const rows of keysetPages((page) => deps.activity.page(userId, {}, page), pageSize)) yield rows.map(activityView);
}
