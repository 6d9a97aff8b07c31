import { type SQL, sql } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";

/** `column LIKE 'prefix%'` with the prefix taken literally: `%`, `_` and `\` in it match only themselves. */
export function startsWith(column: SQLiteColumn, prefix: string): SQL {
  const pattern = `${prefix.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
  return sql`${column} LIKE ${pattern} ESCAPE '\\'`;
}
