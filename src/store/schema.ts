/**
 * Latchkey's storage schema (D1 / SQLite). Times are integer milliseconds since the epoch.
 * Every table that belongs to a user cascades on the user's deletion, so deleting the user row
 * is the one statement that removes an account and everything it owns (D1 enforces foreign keys).
 * Secrets are never stored: refresh tokens as SHA-256, one-time codes as HMAC-SHA256.
 */

import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

const timestamp = (name: string) => integer(name, { mode: "number" });

export const users = sqliteTable(
  "users",
  {
    id: text("id").primaryKey(),
    /** Canonical (NFKC, trimmed, lower-cased) email; the verified one unless `email_verified` is false. */
    email: text("email").notNull(),
    /**
     * An address the user asked to change to, not yet proven by its `change_email` code. It
     * reserves nothing: it has no unique index, and whoever proves it first gets it.
     */
    pendingEmail: text("pending_email"),
    /** Canonical username, or null when the user never chose one. */
    username: text("username"),
    passwordHash: text("password_hash").notNull(),
    isActive: integer("is_active", { mode: "boolean" }).notNull().default(true),
    isStaff: integer("is_staff", { mode: "boolean" }).notNull().default(false),
    emailVerified: integer("email_verified", { mode: "boolean" }).notNull().default(false),
    /** Access tokens issued before this instant are rejected (password change, logout-all, disable). */
    tokensValidAfter: timestamp("tokens_valid_after").notNull().default(0),
    createdAt: timestamp("created_at").notNull(),
    updatedAt: timestamp("updated_at").notNull(),
  },
  (t) => [
    uniqueIndex("users_email_unique").on(t.email),
    uniqueIndex("users_username_unique").on(t.username),
    // The public directory pages by (created_at, id); without this every page sorts all users.
    index("users_created_idx").on(t.createdAt, t.id),
  ],
);

export const refreshTokens = sqliteTable(
  "refresh_tokens",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    /** The login this token descends from; reuse of any rotated token revokes the whole family. */
    familyId: text("family_id").notNull(),
    /** When the sign-in began; rotation never extends a family beyond this + `session_max_age`. */
    familyCreatedAt: timestamp("family_created_at").notNull().default(0),
    parentId: text("parent_id"),
    tokenHash: text("token_hash").notNull(),
    createdAt: timestamp("created_at").notNull(),
    expiresAt: timestamp("expires_at").notNull(),
    revokedAt: timestamp("revoked_at"),
    /** Why it stopped working: "rotated", "logout", "reuse", "password", "admin", … */
    revokedReason: text("revoked_reason"),
    userAgent: text("user_agent"),
    ip: text("ip"),
  },
  (t) => [
    uniqueIndex("refresh_tokens_hash_unique").on(t.tokenHash),
    index("refresh_tokens_family_idx").on(t.familyId),
    index("refresh_tokens_user_idx").on(t.userId, t.revokedAt),
  ],
);

/** Fixed-window counters for rate limits; strongly consistent because D1 serialises writes. */
export const rateLimits = sqliteTable("rate_limits", {
  key: text("key").primaryKey(),
  count: integer("count").notNull(),
  resetAt: timestamp("reset_at").notNull(),
});

export const otpCodes = sqliteTable(
  "otp_codes",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    purpose: text("purpose", { enum: ["verify_email", "login", "reset_password", "change_email"] }).notNull(),
    /** The canonical address the code was mailed to: it proves that address and no other. */
    sentTo: text("sent_to").notNull().default(""),
    codeHash: text("code_hash").notNull(),
    createdAt: timestamp("created_at").notNull(),
    expiresAt: timestamp("expires_at").notNull(),
    attempts: integer("attempts").notNull().default(0),
    /** Set when the code was used, superseded by a newer one, or killed by too many attempts. */
    consumedAt: timestamp("consumed_at"),
  },
  (t) => [index("otp_codes_user_purpose_idx").on(t.userId, t.purpose), index("otp_codes_sent_to_idx").on(t.sentTo, t.purpose)],
);

export const profiles = sqliteTable("profiles", {
  userId: text("user_id")
    .primaryKey()
    .references(() => users.id, { onDelete: "cascade" }),
  name: text("name"),
  surname: text("surname"),
  age: integer("age"),
  phoneNumber: text("phone_number"),
  profession: text("profession"),
  aboutMe: text("about_me"),
  avatarKey: text("avatar_key"),
  avatarContentType: text("avatar_content_type"),
  avatarEtag: text("avatar_etag"),
  updatedAt: timestamp("updated_at").notNull(),
});

export const statuses = sqliteTable(
  "statuses",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    content: text("content").notNull(),
    createdAt: timestamp("created_at").notNull(),
    updatedAt: timestamp("updated_at").notNull(),
    /**
     * Whether the author is in public view (isPublicAccount), kept in step with the author's row
     * by every write that changes it (statements.ts, `statusesFollowAuthor`). It exists for the
     * index: the timeline walks only public rows, instead of every newer status of each hidden
     * author on every page (a disabled spammer's thousands of posts).
     */
    authorPublic: integer("author_public", { mode: "boolean" }).notNull().default(true),
  },
  (t) => [
    index("statuses_public_created_idx").on(t.authorPublic, t.createdAt, t.id),
    index("statuses_user_created_idx").on(t.userId, t.createdAt, t.id),
  ],
);

export const activity = sqliteTable(
  "activity",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    type: text("type").notNull(),
    createdAt: timestamp("created_at").notNull(),
    ip: text("ip"),
    userAgent: text("user_agent"),
    /** A small JSON object; never passwords, codes or tokens. */
    details: text("details").notNull().default("{}"),
  },
  (t) => [index("activity_user_created_idx").on(t.userId, t.createdAt, t.id), index("activity_created_idx").on(t.createdAt)],
);

export const adminAudit = sqliteTable(
  "admin_audit",
  {
    id: text("id").primaryKey(),
    /** The staff user who made the change; kept (as null) if that account is later deleted. */
    actorId: text("actor_id").references(() => users.id, { onDelete: "set null" }),
    /**
     * That staff user's address when the entry was written, so the trail still names who made a
     * change once their account is gone: a null actor is then not mistaken for the operator's CLI,
     * whose entries have neither. Null in entries written before this column existed.
     */
    actorEmail: text("actor_email"),
    createdAt: timestamp("created_at").notNull(),
    action: text("action").notNull(),
    target: text("target").notNull(),
    oldValue: text("old_value"),
    newValue: text("new_value"),
  },
  (t) => [index("admin_audit_created_idx").on(t.createdAt, t.id)],
);

/**
 * Security notices (`features/mail/notices.ts`), written in the same transaction as the change they
 * report and deleted once the queue consumer has sent them: a failed enqueue, a lost reply or a
 * provider down past the queue's retries can then delay a notice, never lose it. `id` is the
 * notice's `notice_id`; `message` its queue message, JSON. Until `next_attempt_at` the notice is
 * leased to a message on its way; after it, it is due to be enqueued again (`attempts` so far).
 */
export const pendingNotices = sqliteTable(
  "pending_notices",
  {
    id: text("id").primaryKey(),
    message: text("message").notNull(),
    createdAt: timestamp("created_at").notNull(),
    nextAttemptAt: timestamp("next_attempt_at").notNull().default(0),
    attempts: integer("attempts").notNull().default(0),
  },
  (t) => [index("pending_notices_created_idx").on(t.createdAt), index("pending_notices_due_idx").on(t.nextAttemptAt)],
);

/**
 * Usernames given up (a rename, a deleted account), held from others for a while: every link to
 * /people/<name> would otherwise show whoever took the name next. `user_id` is the account that may
 * take it back; null after a deletion (nothing of the deleted account is kept).
 */
export const releasedUsernames = sqliteTable(
  "released_usernames",
  {
    username: text("username").primaryKey(),
    userId: text("user_id"),
    releasedAt: timestamp("released_at").notNull(),
  },
  (t) => [index("released_usernames_released_idx").on(t.releasedAt)],
);

export type User = typeof users.$inferSelect;
export type RefreshToken = typeof refreshTokens.$inferSelect;
export type Profile = typeof profiles.$inferSelect;
export type Status = typeof statuses.$inferSelect;
export type ActivityEntry = typeof activity.$inferSelect;

/** Used by raw conditional SQL in services. */
