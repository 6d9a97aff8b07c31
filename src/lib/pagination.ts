/**
 * Keyset (cursor) pagination shared by every list endpoint. A page is ordered by a time column and
 * the row id as a tie-breaker, so the order is total and stable while rows are added or removed
 * (offsets would skip or repeat rows). The cursor is the position of the last row returned,
 * sealed with AES-256-GCM under a key derived from a server secret and sent as base64url: clients
 * pass it back unchanged, a cursor they built or altered is a 400 even when it is well-formed,
 * and it tells them nothing. Signed but readable, the directory's cursor showed to the
 * millisecond when the page's last account registered, which its public view leaves out. A cursor
 * is sealed for one list (`ListName`, the AES-GCM additional data) and refused by every other:
 * replayed on the timeline, the directory's would have placed that same time between two statuses.
 */
import { z } from "@hono/zod-openapi";
import { seal, unseal } from "./crypto";
import { AppError } from "./errors";

/** Page sizes: small by default, bounded so one request never reads an unbounded table slice. */
export const PAGE_DEFAULT_LIMIT = 20;
export const PAGE_MAX_LIMIT = 100;
/** Real cursors are about 90 characters; anything far longer is not one of ours, refused unparsed. */
const CURSOR_MAX_LENGTH = 256;
/** Row ids are server-made base64url (`randomId`). */
const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** The lists that page, each with cursors of its own. */
export type ListName = "profiles" | "statuses" | "activity" | "admin.users" | "admin.audit";

/** Where a page ends: the sort time (ms) and id of its last row. */
export interface Cursor {
  t: number;
  id: string;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** The cursors' label for `seal` (a key of their own, derived from the secret) and their additional data. */
const CURSOR_LABEL = "pagination-cursor:v2";
const listContext = (list: ListName) => `list:${list}`;

export async function encodeCursor(secret: string, list: ListName, position: Cursor): Promise<string> {
  return seal(secret, CURSOR_LABEL, listContext(list), JSON.stringify([position.t, position.id]));
}

/** Decodes a cursor made by `encodeCursor` with the same secret for the same list; anything else is a 400 `invalid_cursor`. */
export async function decodeCursor(secret: string, list: ListName, cursor: string): Promise<Cursor> {
  const invalid = () => new AppError("invalid_cursor", "Pass back the next_cursor of a previous page unchanged.");
  if (cursor.length > CURSOR_MAX_LENGTH) throw invalid();
  // null: altered, forged, made under another secret or for another list
  const plain = await unseal(secret, CURSOR_LABEL, listContext(list), cursor);
  if (!plain) throw invalid();
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(plain));
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
 * page). `secret` seals and opens cursors (the OTP_SECRET, under its own label).
 */
export async function pageRequest(
  secret: string,
  list: ListName,
  query: { limit?: number; cursor?: string },
): Promise<{ limit: number; cursor: Cursor | null }> {
  return {
    limit: query.limit ?? PAGE_DEFAULT_LIMIT,
    cursor: query.cursor === undefined ? null : await decodeCursor(secret, list, query.cursor),
  };
}

/** A row's position by its `createdAt` and `id`, the order of most lists. */
function createdPosition<R>(row: R): Cursor {
  const r = row as unknown as { createdAt: number; id: string };
  return { t: r.createdAt, id: r.id };
}

/**
 * Splits `limit + 1` fetched rows into the page's rows and where the next page starts: the extra
 * row only proves there is a next page, which starts after the last row kept (null: none).
 */
export function splitPage<R>(
  rows: R[],
  limit: number,
  positionOf: (row: R) => Cursor = createdPosition,
): { kept: R[]; next: Cursor | null } {
  const kept = rows.slice(0, limit);
  const last = kept[kept.length - 1];
  return { kept, next: rows.length > limit && last !== undefined ? positionOf(last) : null };
}

/**
 * Every row of a keyset list, `pageSize` at a time, for a reader that takes all of them (the data
 * export): `read` fetches `limit + 1` rows after a cursor, as a list endpoint's store method does.
 * Each row comes once and in the list's order even while rows are added (newer than any cursor)
 * or removed between pages.
 */
export async function* keysetPages<R>(
  read: (page: { limit: number; cursor: Cursor | null }) => Promise<R[]>,
  pageSize: number,
): AsyncGenerator<R[]> {
  let cursor: Cursor | null = null;
  do {
    const { kept, next }: { kept: R[]; next: Cursor | null } = splitPage(await read({ limit: pageSize, cursor }), pageSize);
    yield kept;
    cursor = next;
  } while (cursor);
}

/** Turns `limit + 1` fetched rows into a page whose cursor is sealed for `list` (see `splitPage`). */
export async function toPage<R, T>(
  secret: string,
  list: ListName,
  rows: R[],
  limit: number,
  view: (row: R) => T,
  positionOf: (row: R) => Cursor = createdPosition,
): Promise<Page<T>> {
  const { kept, next } = splitPage(rows, limit, positionOf);
  return { items: kept.map(view), next_cursor: next ? await encodeCursor(secret, list, next) : null };
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
