/**
 * Keyset (cursor) pagination shared by every list endpoint. A page is ordered by a time column and
 * the row id as a tie-breaker, so the order is total and stable while rows are added or removed
 * (offsets would skip or repeat rows). The cursor is the position of the last row returned,
 * encoded as opaque base64url and signed (HMAC-SHA256 under a server secret, truncated to 128
 * bits): clients pass it back unchanged, and a cursor they built or altered is a 400, even when it
 * is well-formed.
 */
import { z } from "@hono/zod-openapi";
import { base64urlDecode, base64urlEncode, hmacSha256Hex, timingSafeEqual } from "./crypto";
import { AppError } from "./errors";

/** Page sizes: small by default, bounded so one request never reads an unbounded table slice. */
export const PAGE_DEFAULT_LIMIT = 20;
export const PAGE_MAX_LIMIT = 100;
/** Real cursors are ~40 characters; anything far longer is not one of ours, refused unparsed. */
const CURSOR_MAX_LENGTH = 256;
/** Row ids are server-made base64url (`randomId`). */
const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** Where a page ends: the sort time (ms) and id of its last row. */
export interface Cursor {
  t: number;
  id: string;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** The cursor's signature: domain-separated from the secret's other uses, 128 bits in hex. */
async function cursorMac(secret: string, payload: string): Promise<string> {
  return (await hmacSha256Hex(secret, `pagination-cursor:${payload}`)).slice(0, 32);
}

export async function encodeCursor(secret: string, position: Cursor): Promise<string> {
  const payload = base64urlEncode(new TextEncoder().encode(JSON.stringify([position.t, position.id])));
  return `${payload}.${await cursorMac(secret, payload)}`;
}

/** Decodes a cursor made by `encodeCursor` with the same secret; anything else is a 400 `invalid_cursor`. */
export async function decodeCursor(secret: string, cursor: string): Promise<Cursor> {
  const invalid = () => new AppError("invalid_cursor", "Pass back the next_cursor of a previous page unchanged.");
  if (cursor.length > CURSOR_MAX_LENGTH) throw invalid();
  const [payload, mac, ...rest] = cursor.split(".");
  if (payload === undefined || mac === undefined || rest.length > 0) throw invalid();
  if (!timingSafeEqual(mac, await cursorMac(secret, payload))) throw invalid();
  const bytes = base64urlDecode(payload);
  if (!bytes) throw invalid();
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(value) || value.length !== 2) throw invalid();
  const [t, id] = value as unknown[];
  if (typeof t !== "number" || !Number.isSafeInteger(t) || typeof id !== "string" || !ID_PATTERN.test(id)) throw invalid();
  return { t, id };
}

/**
 * The page a list request asks for: its size (default 20) and where it starts (null: the first
 * page). `secret` signs and checks cursors (the OTP_SECRET, under its own label).
 */
export async function pageRequest(
  secret: string,
  query: { limit?: number; cursor?: string },
): Promise<{ limit: number; cursor: Cursor | null }> {
  return { limit: query.limit ?? PAGE_DEFAULT_LIMIT, cursor: query.cursor === undefined ? null : await decodeCursor(secret, query.cursor) };
}

/**
 * Turns `limit + 1` fetched rows into a page: the extra row only proves there is a next page,
 * whose cursor is the position of the last row kept (by default its `createdAt` and `id`).
 */
export async function toPage<R, T>(
  secret: string,
  rows: R[],
  limit: number,
  view: (row: R) => T,
  positionOf: (row: R) => Cursor = (row) => {
    const r = row as unknown as { createdAt: number; id: string };
    return { t: r.createdAt, id: r.id };
  },
): Promise<Page<T>> {
  const kept = rows.slice(0, limit);
  const last = kept[kept.length - 1];
  return {
    items: kept.map(view),
    next_cursor: rows.length > limit && last !== undefined ? await encodeCursor(secret, positionOf(last)) : null,
  };
}

const LIMIT_MESSAGE = `must be an integer from 1 to ${PAGE_MAX_LIMIT}`;

/** `limit` and `cursor` query parameters, as every list endpoint takes them: spread into a query object. */
export const pageQuery = {
  limit: z.coerce
    .number({ invalid_type_error: LIMIT_MESSAGE })
    .int({ message: LIMIT_MESSAGE })
    .min(1, { message: LIMIT_MESSAGE })
    .max(PAGE_MAX_LIMIT, { message: LIMIT_MESSAGE })
    .default(PAGE_DEFAULT_LIMIT)
    .openapi({ type: "integer", minimum: 1, maximum: PAGE_MAX_LIMIT, default: PAGE_DEFAULT_LIMIT }),
  // No length rule here: a malformed cursor of any length is an `invalid_cursor` from decodeCursor.
  cursor: z.string().optional().openapi({ description: "The previous page's next_cursor, unchanged" }),
};
