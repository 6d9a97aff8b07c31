/** Reading a user's own activity history (the activity center). */
import { and, desc, eq } from "drizzle-orm";
import { type ActivityEntry, activity } from "../../db/schema";
import type { Deps } from "../../env";
import { olderThan, type Page, pageRequest, toPage } from "../../lib/pagination";
import type { ActivityType } from "./activity.record";

export interface ActivityView {
  id: string;
  type: string;
  created_at: string;
  ip: string | null;
  user_agent: string | null;
  details: Record<string, unknown>;
}

/** `details` is stored as JSON text; anything that is not a JSON object shows as `{}`. */
function parseDetails(text: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export function activityView(entry: ActivityEntry): ActivityView {
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
  deps: Pick<Deps, "db" | "env">,
  userId: string,
  query: { type?: ActivityType; limit?: number; cursor?: string },
): Promise<Page<ActivityView>> {
  const { limit, cursor } = await pageRequest(deps.env.OTP_SECRET, query);
  const rows = await deps.db
    .select()
    .from(activity)
    .where(
      and(
        eq(activity.userId, userId),
        query.type === undefined ? undefined : eq(activity.type, query.type),
        olderThan(activity.createdAt, activity.id, cursor),
      ),
    )
    .orderBy(desc(activity.createdAt), desc(activity.id))
    .limit(limit + 1);
  return toPage(deps.env.OTP_SECRET, rows, limit, activityView);
}

/** Every entry of the user, newest first (for the data export). */
export async function allActivity(deps: Pick<Deps, "db">, userId: string): Promise<ActivityView[]> {
  const rows = await deps.db
    .select()
    .from(activity)
    .where(eq(activity.userId, userId))
    .orderBy(desc(activity.createdAt), desc(activity.id));
  return rows.map(activityView);
}
