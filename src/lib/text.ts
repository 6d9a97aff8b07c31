/**
 * Canonical forms of identifiers. NFKC folds compatibility look-alikes (full-width letters,
 * ligatures, …) so `ａｄａ@example.com` and `ada@example.com` are one account, and lower-casing
 * makes comparison case-insensitive. The canonical form is what is stored and what mail goes to.
 */
export function normalizeIdentifier(value: string): string {
  return value.normalize("NFKC").trim().toLowerCase();
}

/** A UTF-16 surrogate without its pair: not a character, and stored as U+FFFD (three per one). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Trims and NFC-normalises free text; returns null when it contains control characters or lone surrogates. */
export function cleanText(value: string): string | null {
  const text = value.normalize("NFC").trim();
  // Allow \n and \t in long text; refuse every other C0/C1 control and bidi override.
  if (/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(text)) return null;
  // Length rules count what is stored: a lone surrogate would come back as something else, longer.
  return LONE_SURROGATE.test(text) ? null : text;
}

/** Removes every C0 and C1 control character (tabs and line breaks included) and bidi override, for one-line values. */
export function stripControlCharacters(value: string): string {
  return value.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, "");
}
