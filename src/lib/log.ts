/**
 * Structured logs: one JSON object per line on stdout, which Workers Logs (`[observability]` in
 * wrangler.toml) indexes field by field, and which `wrangler tail` and local workerd print as is.
 * Every line has `time` (ISO 8601), `level` and `event`; the rest depends on the event (`request`,
 * `error`, `mail.batch`, `retention`).
 *
 * What never goes in a line: passwords, one-time codes, tokens, email addresses, full IP
 * addresses, SQL parameters (`loggableError` strips them). A user appears only as `userRef`, a
 * keyed hash of the id: one user's requests can be correlated, but a leaked log store does not
 * hand out account ids to match against the database or the API. The development mail driver's
 * `[mail] … code=…` line is the one deliberate exception and only exists under MAIL_DRIVER=console.
 */
import { hmacSha256Hex } from "./crypto";

export type LogLevel = "info" | "warn" | "error";
export type LogValue = string | number | boolean | null | undefined;
export type LogFields = Record<string, LogValue>;

/** Where lines go; tests swap it to capture them. */
export type LogSink = (level: LogLevel, line: string) => void;

const consoleSink: LogSink = (level, line) => {
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
};

let sink: LogSink = consoleSink;

/** Replaces the sink (tests); returns a function that restores the previous one. */
export function setLogSink(next: LogSink): () => void {
  const previous = sink;
  sink = next;
  return () => {
    sink = previous;
  };
}

/** The line for `event`: a flat JSON object, `undefined` fields left out. */
export function formatLogLine(level: LogLevel, event: string, fields: LogFields, now: Date = new Date()): string {
  const record: Record<string, LogValue> = { time: now.toISOString(), level, event };
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) record[key] = value;
  return JSON.stringify(record);
}

/** Writes one structured line. */
export function log(level: LogLevel, event: string, fields: LogFields = {}): void {
  sink(level, formatLogLine(level, event, fields));
}

/**
 * The label the user hash is computed under, so this HMAC of OTP_SECRET can never equal one the
 * code or cursor hashes compute (they use their own prefixes).
 */
const USER_REF_LABEL = "log-user-ref:v1";

/**
 * Recent refs, per isolate: an isolate serves the same users again and again, and an HMAC per
 * logged request was measurable CPU on the hot endpoints. Bounded, and dropped whole when full.
 */
const recentRefs = new Map<string, string>();
const RECENT_REFS_MAX = 1000;

/** A stable, non-reversible reference to a user for logs: HMAC-SHA256(OTP_SECRET, label + id), 16 hex characters. */
export async function userRef(secret: string | undefined, userId: string): Promise<string | undefined> {
  if (!secret) return undefined;
  const cacheKey = `${secret}\n${userId}`;
  let ref = recentRefs.get(cacheKey);
  if (ref === undefined) {
    ref = (await hmacSha256Hex(secret, `${USER_REF_LABEL}:${userId}`)).slice(0, 16);
    if (recentRefs.size >= RECENT_REFS_MAX) recentRefs.clear();
    recentRefs.set(cacheKey, ref);
  }
  return ref;
}
