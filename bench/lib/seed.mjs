// Seeds the benchmark's local D1 and R2 directly (batched SQL through Miniflare's binding proxy),
// never through the API: 10,000 sign-ups would spend minutes hashing passwords. Every user shares
// one password hash made once by the worker's own code, so rows look exactly like real ones.
import { createHash, randomBytes } from "node:crypto";
import { migrationBatches } from "../../scripts/lib/migrations.mjs";
import { encodePng } from "../../scripts/lib/png.mjs";

export const BENCH_PASSWORD = "bench-horse-battery-staple-7";
const ROWS_PER_STATEMENT = 250;

const q = (value) => (value === null ? "NULL" : typeof value === "number" ? String(value) : `'${String(value).replaceAll("'", "''")}'`);
const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
export const sha256Hex = (text) => createHash("sha256").update(text).digest("hex");

export const userId = (i) => `bench${i.toString(36).padStart(6, "0")}`;
export const userEmail = (i) => `bench${i}@example.com`;

/** Applies every migration in `dir` in name order (drizzle's breakpoints separate statements). */
export async function applyMigrations(db, dir) {
  for (const statements of migrationBatches(dir)) await db.batch(statements.map((s) => db.prepare(s)));
}

async function insertRows(db, table, columns, rows) {
  const statements = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    const values = rows
      .slice(i, i + ROWS_PER_STATEMENT)
      .map((row) => `(${row.map(q).join(",")})`)
      .join(",");
    statements.push(db.prepare(`INSERT INTO ${table} (${columns.join(",")}) VALUES ${values}`));
  }
  for (let i = 0; i < statements.length; i += 20) await db.batch(statements.slice(i, i + 20));
}

/** A real PNG of random pixels (noise does not compress, so its size is its pixel count × 3). */
export function noisePng(side) {
  return encodePng(side, () => randomBytes(3));
}

/**
 * Users (verified, active) with profiles, `statusesPerUser` statuses for every user (0: none), and
 * an avatar in R2 for every `avatarEvery`-th user (0: none). Returns the users with an avatar, their
 * keys and versions.
 */
export async function seed({ db, bucket, users, passwordHash, statusesPerUser = 2, avatarEvery = 50, progress }) {
  const now = Date.now();
  const avatars = [];
  const png = noisePng(avatarEvery > 0 ? 96 : 1);
  // A standalone ArrayBuffer: Miniflare's binding proxy refuses a view into Node's Buffer pool.
  const pngBytes = png.buffer.slice(png.byteOffset, png.byteOffset + png.length);
  const chunk = 1000;
  for (let start = 0; start < users; start += chunk) {
    const end = Math.min(users, start + chunk);
    const userRows = [];
    const profileRows = [];
    const statusRows = [];
    for (let i = start; i < end; i++) {
      const id = userId(i);
      const created = now - (users - i) * 60_000;
      userRows.push([id, userEmail(i), `bench${i}`, passwordHash, 1, 0, 1, 0, created, created]);
      let avatar = [null, null, null];
      if (avatarEvery > 0 && i % avatarEvery === 0) {
        // The worker's own key shape and stored ETag form (avatars/{user_id}/{random}.{ext}, httpEtag).
        const version = b64url(randomBytes(16));
        const key = `avatars/${id}/${version}.png`;
        const object = await bucket.put(key, pngBytes, { httpMetadata: { contentType: "image/png" } });
        avatar = [key, "image/png", object.httpEtag];
        avatars.push({ userId: id, key, version });
      }
      profileRows.push([id, `Name${i}`, `Surname${i}`, 20 + (i % 60), null, "Engineer", `About bench user ${i}.`, ...avatar, created]);
      for (let s = 0; s < statusesPerUser; s++) {
        const at = created + s * 1000;
        statusRows.push([`st${id}${s}`, id, `Status ${s} of bench user ${i}: measuring the edge.`, at, at]);
      }
    }
    await insertRows(
      db,
      "users",
      [
        "id",
        "email",
        "username",
        "password_hash",
        "is_active",
        "is_staff",
        "email_verified",
        "tokens_valid_after",
        "created_at",
        "updated_at",
      ],
      userRows,
    );
    await insertRows(
      db,
      "profiles",
      [
        "user_id",
        "name",
        "surname",
        "age",
        "phone_number",
        "profession",
        "about_me",
        "avatar_key",
        "avatar_content_type",
        "avatar_etag",
        "updated_at",
      ],
      profileRows,
    );
    if (statusRows.length > 0) await insertRows(db, "statuses", ["id", "user_id", "content", "created_at", "updated_at"], statusRows);
    progress?.(end, users);
  }
  return { avatars, avatarBytes: png.length };
}

/**
 * Inserts `count` live refresh tokens (one new family each, cycling over the seeded users) and
 * returns the plain tokens. Only their SHA-256 is stored, as the worker stores them.
 */
export async function mintRefreshTokens(db, { count, users, offset = 0 }) {
  const now = Date.now();
  const tokens = [];
  const rows = [];
  for (let n = 0; n < count; n++) {
    const token = b64url(randomBytes(32));
    tokens.push(token);
    rows.push([
      b64url(randomBytes(16)),
      userId((offset + n) % users),
      b64url(randomBytes(16)),
      sha256Hex(token),
      now,
      now,
      now + 30 * 86_400_000,
    ]);
  }
  // family_created_at: the sign-in starts now, so its absolute lifetime (session_max_age) has not run out.
  await insertRows(
    db,
    "refresh_tokens",
    ["id", "user_id", "family_id", "token_hash", "family_created_at", "created_at", "expires_at"],
    rows,
  );
  return tokens;
}
