/**
 * Profile fields as the API takes and returns them. Input text is NFC-normalised and trimmed;
 * control characters are refused (a newline only in `about_me`), and so are characters that draw
 * nothing in the fields that present a person, and more marks on one character than the field's
 * kind allows (MAX_STACKED_MARKS); an empty string clears a field.
 * Lengths count characters (code points), not UTF-16 units, so an emoji is one character.
 */
import { z } from "@hono/zod-openapi";
import { pageQuery } from "../../lib/pagination";
import { cleanText, hasInvisibleCharacters, stackedMarksProblem } from "../../lib/text";

export const PROFILE_LIMITS = { name: 50, surname: 50, profession: 100, about_me: 2000, age: 150 } as const;
/** E.164: a plus sign, then 8–15 digits, the first not 0 (ITU-T E.164 §6). */
const E164 = /^\+[1-9][0-9]{7,14}$/;

/**
 * A run of spaces in a name, of any of the widths drawn alike in a list (every space separator, Zs:
 * no-break, en, em, thin, narrow no-break, medium mathematical, Ogham, and the plain one): stored as
 * one plain space, since a page draws "Ada  Lovelace" and "Ada\u00a0Lovelace" just as "Ada Lovelace".
 * The ideographic space (U+3000) of CJK names is wider, and kept. Line and paragraph separators are
 * line breaks, which cleanText makes "\n" and a name refuses.
 */
const NAME_SPACES = /(?:(?!\u3000)\p{Zs})+/gu;

/**
 * `identity`: one line the directory and a profile show as who someone is (name, surname,
 * profession), where an invisible character would let one person pass for another. `prose`: lines
 * of free text (about_me), which keep the zero-width characters some scripts are written with.
 */
function textField(max: number, options: { kind: "identity" | "prose"; example: string }) {
  const identity = options.kind === "identity";
  return z
    .string({ invalid_type_error: "must be a string or null" })
    .transform((value, ctx) => {
      // Browsers submit textarea line breaks as CRLF; store them as LF.
      const cleaned = cleanText(identity ? value : value.replace(/\r\n/g, "\n"));
      const text = identity && cleaned !== null ? cleaned.replace(NAME_SPACES, " ") : cleaned;
      if (text === null || (identity && /[\n\t]/.test(text))) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: "must not contain control characters" });
        return z.NEVER;
      }
      // The length first: the invisible-character check then reads at most `max` characters.
      if ([...text].length > max) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be at most ${max} characters` });
        return z.NEVER;
      }
      // The stack before the invisible characters: a joiner inside one is named as part of it.
      const stacked = stackedMarksProblem(text, options.kind);
      if (stacked !== null) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: stacked });
        return z.NEVER;
      }
      if (identity && hasInvisibleCharacters(text)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: "must not contain invisible characters" });
        return z.NEVER;
      }
      return text === "" ? null : text;
    })
    .nullable()
    .openapi({ type: "string", maxLength: max, example: options.example });
}

const PhoneSchema = z
  .string({ invalid_type_error: "must be a string or null" })
  .max(64, { message: "must be in E.164 form: + and 8–15 digits" })
  .transform((value, ctx) => {
    const trimmed = value.trim();
    if (trimmed === "") return null;
    const compact = trimmed.replace(/[ -]/g, "");
    if (!E164.test(compact)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: "must be in E.164 form: + and 8–15 digits" });
      return z.NEVER;
    }
    return compact;
  })
  .nullable()
  .openapi({ type: "string", example: "+44 20 7946 0958", description: "E.164; spaces and dashes are removed" });

const AGE_MESSAGE = `must be an integer from 0 to ${PROFILE_LIMITS.age}`;
const AgeSchema = z
  .number({ invalid_type_error: AGE_MESSAGE })
  .int({ message: AGE_MESSAGE })
  .min(0, { message: AGE_MESSAGE })
  .max(PROFILE_LIMITS.age, { message: AGE_MESSAGE })
  .nullable();

const editableFields = {
  name: textField(PROFILE_LIMITS.name, { kind: "identity", example: "Ada" }).optional(),
  surname: textField(PROFILE_LIMITS.surname, { kind: "identity", example: "Lovelace" }).optional(),
  age: AgeSchema.optional(),
  phone_number: PhoneSchema.optional(),
  profession: textField(PROFILE_LIMITS.profession, { kind: "identity", example: "Mathematician" }).optional(),
  about_me: textField(PROFILE_LIMITS.about_me, { kind: "prose", example: "I write programs for engines." }).optional(),
};

// Strict: `avatar_key`, `user_id`, `updated_at` … are refused with 400, never silently dropped.
export const ReplaceProfileSchema = z.strictObject(editableFields).openapi("ReplaceProfileRequest", {
  description: "Every editable field; omitted ones are cleared to null",
});
export const UpdateProfileSchema = z.strictObject(editableFields).openapi("UpdateProfileRequest", {
  description: "Only the fields given change",
});
export type ProfileInput = z.infer<typeof ReplaceProfileSchema>;
export type EditableField = keyof ProfileInput;
export const EDITABLE_FIELDS = Object.keys(editableFields) as EditableField[];

const avatarUrl = z
  .string()
  .nullable()
  .openapi({ example: "/api/v1/profiles/3J9x…/avatar?v=Qm2…", description: "Changes whenever the avatar changes" });

export const ProfileSchema = z
  .object({
    name: z.string().nullable(),
    surname: z.string().nullable(),
    age: z.number().int().nullable(),
    phone_number: z.string().nullable(),
    profession: z.string().nullable(),
    about_me: z.string().nullable(),
    avatar_url: avatarUrl,
    updated_at: z.string().openapi({ format: "date-time" }),
  })
  .openapi("Profile");

/** What anyone may see: never email, phone number or age. */
export const PublicProfileSchema = z
  .object({
    user_id: z.string(),
    username: z.string().nullable(),
    name: z.string().nullable(),
    surname: z.string().nullable(),
    profession: z.string().nullable(),
    about_me: z.string().nullable(),
    avatar_url: avatarUrl,
  })
  .openapi("PublicProfile");

export const ProfilePageSchema = z
  .object({ items: z.array(PublicProfileSchema), next_cursor: z.string().nullable() })
  .openapi("ProfilePage", { description: "`next_cursor` is null on the last page" });

export const DirectoryQuerySchema = z.object({
  q: z
    .string()
    .max(100, { message: "must be at most 100 characters" })
    .optional()
    .openapi({ description: "Prefix of a username or name (case-insensitive for ASCII)" }),
  ...pageQuery,
});

export const UserIdParamSchema = z.object({
  user_id: z
    .string()
    .max(128)
    .openapi({ param: { name: "user_id", in: "path" }, example: "3J9xQ2…" }),
});
