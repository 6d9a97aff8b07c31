/**
 * Password policy, after Django's four default validators: minimum length, not too similar to
 * the user's attributes, not a common password, not entirely numeric; and, as NIST SP 800-63B
 * asks, no repetitive or sequential characters ("aaaaaa", "1234abcd"), which a list of common
 * passwords only partly covers. Pure: no I/O, no clock.
 */
import commonPasswordsText from "./common-passwords.txt";

export const PASSWORD_MIN_LENGTH = 8;
/** Bounds hashing work per request; the schema refuses longer input before any hashing. */
export const PASSWORD_MAX_LENGTH = 128;
const MAX_SIMILARITY = 0.7;

let commonPasswords: Set<string> | null = null;
function isCommon(password: string): boolean {
  commonPasswords ??= new Set(commonPasswordsText.split("\n").filter(Boolean));
  return commonPasswords.has(password.normalize("NFKC").trim().toLowerCase());
}

/** difflib's SequenceMatcher.quick_ratio: shared characters (as a multiset) over total length. */
function quickRatio(a: string, b: string): number {
  const counts = new Map<string, number>();
  for (const ch of b) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let matches = 0;
  for (const ch of a) {
    const left = counts.get(ch) ?? 0;
    if (left > 0) {
      matches++;
      counts.set(ch, left - 1);
    }
  }
  const total = a.length + b.length;
  return total === 0 ? 1 : (2 * matches) / total;
}

/** Django skips values much shorter than the password: they cannot reach the similarity bound. */
function tooShortToCompare(password: string, value: string): boolean {
  return password.length >= 10 * value.length && value.length < (MAX_SIMILARITY / 2) * password.length;
}

function similarToAttribute(password: string, attribute: string): boolean {
  const pwd = password.toLowerCase();
  const value = attribute.toLowerCase();
  const parts = [value, ...value.split(/\W+/)].filter((part) => part.length > 0);
  return parts.some((part) => !tooShortToCompare(pwd, part) && quickRatio(pwd, part) >= MAX_SIMILARITY);
}

/** The longest unit counted as a "short pattern": with the 8-character minimum, repeated at least twice. */
const MAX_PATTERN = 4;

/** One unit of at most `MAX_PATTERN` characters repeated from start to end: aaaaaaaa, abababab, xyz1xyz1. */
function isRepeatedPattern(password: string): boolean {
  const chars = [...password.toLowerCase()];
  for (let unit = 1; unit <= MAX_PATTERN && unit * 2 <= chars.length; unit++) {
    if (chars.every((ch, i) => ch === chars[i % unit])) return true;
  }
  return false;
}

/** Each character one code point above the one before, or each one below: abcdefgh, HGFEDCBA. */
function isConsecutiveRun(password: string): boolean {
  const points = [...password.toLowerCase()].map((ch) => ch.codePointAt(0) ?? 0);
  const step = (points[1] ?? 0) - (points[0] ?? 0);
  return (step === 1 || step === -1) && points.every((point, i) => i === 0 || point - (points[i - 1] ?? 0) === step);
}

/** Every way `password` breaks the policy, as human-readable messages (empty when it is fine). */
export function checkPasswordPolicy(password: string, attributes: { email?: string | null; username?: string | null }): string[] {
  const problems: string[] = [];
  if (password.length < PASSWORD_MIN_LENGTH) problems.push(`must be at least ${PASSWORD_MIN_LENGTH} characters`);
  if (password.length > PASSWORD_MAX_LENGTH) problems.push(`must be at most ${PASSWORD_MAX_LENGTH} characters`);
  if (/^\d+$/.test(password)) problems.push("must not be entirely numeric");
  if (isRepeatedPattern(password)) problems.push("must not be one short pattern repeated");
  if (isConsecutiveRun(password)) problems.push("must not be a run of consecutive characters (like abcdefgh)");
  if (isCommon(password)) problems.push("is too common");
  for (const [name, value] of Object.entries(attributes)) {
    if (value && similarToAttribute(password, value)) problems.push(`is too similar to the ${name}`);
  }
  return problems;
}
