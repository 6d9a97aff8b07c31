/**
 * What a newly chosen username must also be, beyond its schema (`UsernameSchema`: 3–30 of a-z 0-9
 * _ . -, canonical). Checked where a name is chosen (registration, a rename), never where one is
 * looked up (login): a name held from before a rule stays usable. Pure: no I/O.
 */

/**
 * How long a username given up (a rename, a deleted account) stays held from others: every link to
 * /people/<name> would otherwise show whoever took it next. Its previous owner may take it back.
 */
export const USERNAME_HOLD_MS = 30 * 86_400_000;

/**
 * Names that would pass for the service, its staff or its mailboxes on a public profile (`@admin`
 * on /people looks official). Compared with the separators taken out, so `ad-min` and `s.u.p.p.o.r.t`
 * count; anything starting with the service's own name too. Staff may take them (a support account).
 */
const RESERVED = new Set([
  "abuse",
  "admin",
  "administrator",
  "api",
  "help",
  "helpdesk",
  "hostmaster",
  "info",
  "mod",
  "moderator",
  "noreply",
  "official",
  "operator",
  "postmaster",
  "root",
  "security",
  "staff",
  "support",
  "sysadmin",
  "system",
  "webmaster",
]);
const SERVICE_NAME = "latchkey";

/** Why `username` (canonical, schema-valid) cannot be chosen, or null when it can. */
export function usernameProblem(username: string, options: { staff: boolean }): string | null {
  // Punctuation at either end reads as part of the text around a name (`@ada.`), or is nothing but punctuation.
  if (!/^[a-z0-9](?:.*[a-z0-9])?$/.test(username)) return "must start and end with a letter or digit";
  const bare = username.replace(/[._-]/g, "");
  if (!options.staff && (RESERVED.has(bare) || bare.startsWith(SERVICE_NAME))) return "is reserved";
  return null;
}
