import { JOINS_BACKWARD, JOINS_FORWARD, VIRAMA } from "./joiners.generated";

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

/**
 * The bidirectional formatting characters (UAX #9 §2.1–2.4): embeddings, overrides and isolates.
 * Drawn as nothing, they reorder whole runs of the text around them, so what a reader sees is not
 * what it says ("Trojan Source", CVE-2021-42574). The bidi algorithm lays out right-to-left and
 * mixed text without them, so refusing them costs a writer little.
 */
const BIDI_FORMATTING = "\\u202a-\\u202e\\u2066-\\u2069";
/**
 * The bidi marks (LRM, RLM, ALM): each acts as one invisible strong letter, so it sets the direction
 * only of the neutral characters beside it (punctuation, spaces), never that of a word. Right-to-left
 * keyboards type them to put a sentence's final "!" where it belongs, so prose keeps them; a name
 * refuses them (ZERO_WIDTH).
 */
const BIDI_MARKS = "\\u061c\\u200e\\u200f";
/** C0 and C1 controls but for \n and \t, which long text may hold, and the bidi formatting characters. */
const REFUSED_IN_TEXT = new RegExp(`[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f${BIDI_FORMATTING}]`);
const CONTROLS_ON_ONE_LINE = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f${BIDI_FORMATTING}${BIDI_MARKS}]`, "g");

/**
 * Unicode's own line and paragraph separators (U+2028, U+2029; UAX #14 class BK, a mandatory break),
 * stored as the newline every other line break of the service is: prose keeps the break, and a
 * one-line field refuses it as it refuses "\n". Kept as they are, a page could draw one as a space
 * ("Ada\u2028Lovelace" passing for "Ada Lovelace", which a search for that name would not find).
 */
const LINE_SEPARATORS = /[\u2028\u2029]/g;

/**
 * Trims and NFC-normalises free text, line and paragraph separators made newlines; returns null
 * when it contains control characters or lone surrogates.
 */
export function cleanText(value: string): string | null {
  const text = value.normalize("NFC").replace(LINE_SEPARATORS, "\n").trim();
  if (REFUSED_IN_TEXT.test(text)) return null;
  // Length rules count what is stored: a lone surrogate would come back as something else, longer.
  return LONE_SURROGATE.test(text) ? null : text;
}

/**
 * The characters Unicode marks as drawing nothing (Default_Ignorable_Code_Point: zero-width space,
 * joiners, word joiner, BOM, the bidi marks, soft hyphen, Hangul fillers, invisible operators,
 * variation selectors, tag characters, …): "Ada" with one inside looks exactly like "Ada"
 * without. Prose keeps them (Thai and Khmer mark word breaks with the zero-width space), but a
 * name is how a visitor tells people apart, and there an invisible difference is an
 * impersonation. Only those that change what is drawn are kept (see DRAWN_IGNORABLES). The blank
 * Braille pattern (U+2800) is not one of them for Unicode, being printable, but draws nothing too.
 */
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\u2800]/u;
/**
 * A joiner inside an emoji ZWJ sequence (UTS #51 §2.3), after a pictograph (or its skin tone or
 * emoji presentation selector) and before another: 👩‍💻, 🏳️‍🌈. Emoji are welcome in names, and
 * such a joiner is not invisible: it draws the two pictographs as one.
 */
const EMOJI_JOINER = "(?<=\\p{Extended_Pictographic}|\\p{Emoji_Modifier}|\\ufe0f)\\u200d(?=\\p{Extended_Pictographic})";
/**
 * Joining_Type Transparent, near enough: the marks a joining context skips. At most a few: a
 * letter carries two or three (harakat), and an unbounded run inside a lookbehind would re-read
 * the whole run at every position (quadratic time on a string of marks).
 */
const TRANSPARENT = "[\\p{Mn}\\p{Me}]{0,4}";
/**
 * The joiners scripts are spelt with, as IDNA allows them in domain names (RFC 5892 Appendix A.1,
 * A.2): either one after a virama, where it picks between a conjunct and a visible virama (Sinhala
 * "Sri" ශ්‍රී, Devanagari क्‌ष); a non-joiner between a letter that joins forward and one that joins
 * back, which it keeps apart (Persian علی‌اکبر, می‌خواهم). There each draws something; anywhere else
 * (after a right-joining alef, doubled, at an end, in Latin) it would draw nothing, and is refused.
 */
const SPELLING_JOINERS = [
  EMOJI_JOINER,
  `(?<=${VIRAMA})[\\u200c\\u200d]`,
  `(?<=${JOINS_FORWARD}${TRANSPARENT})\\u200c(?=${TRANSPARENT}${JOINS_BACKWARD})`,
];
/**
 * The other ignorables that select what is drawn, after the characters they act on: a pictograph's
 * text or emoji presentation (❤️; UTS #51), a keycap's (1️⃣, only before the enclosing keycap: after
 * a bare digit it changes nothing), a Han ideograph's variant (the exact glyph of a Japanese family
 * name: 葛󠄀, UTS #37), a Mongolian letter's variant form, and the tags of the three subdivision
 * flags of the emoji set (England, Scotland, Wales; any other tags draw the bare black flag).
 */
const VARIATION_SELECTORS = [
  "(?<=\\p{Extended_Pictographic})[\\ufe0e\\ufe0f]",
  "(?<=[0-9#*])\\ufe0f(?=\\u20e3)",
  "(?<=\\p{Script=Han})(?:[\\ufe00-\\ufe0f]|[\\u{e0100}-\\u{e01ef}])",
  "(?<=\\p{Script=Mongolian})[\\u180b-\\u180d\\u180f]",
  "(?<=\\u{1f3f4})\\u{e0067}\\u{e0062}(?:\\u{e0065}\\u{e006e}\\u{e0067}|\\u{e0073}\\u{e0063}\\u{e0074}|\\u{e0077}\\u{e006c}\\u{e0073})\\u{e007f}",
];
const DRAWN_IGNORABLES = new RegExp([...SPELLING_JOINERS, ...VARIATION_SELECTORS].join("|"), "gu");

/** Whether cleaned text meant as a name holds a character that draws nothing (see INVISIBLE). */
export function hasInvisibleCharacters(text: string): boolean {
  return INVISIBLE.test(text.replace(DRAWN_IGNORABLES, ""));
}

/**
 * What may lie between two marks on one character without ending the stack: the characters that
 * draw nothing and take no room (joiners, tags, the zero-width space, …: the format characters and
 * the other default ignorables), so the marks after one are drawn on the same character as those
 * before it. The marks among them (variation selectors, the grapheme joiner) count as marks.
 */
const STACK_GAP = "[[\\p{Cf}\\p{Default_Ignorable_Code_Point}]--\\p{M}]";

/**
 * Whether a character of the text carries more than `max` combining marks ("Zalgo" text, drawn over
 * the lines above and below), counting across the characters between them that draw nothing. The
 * work is bounded by the text's length times `max`: each mark starts one attempt of `max` + 1.
 */
export function stacksMarks(text: string, max: number): boolean {
  return new RegExp(`(?:\\p{M}${STACK_GAP}*){${max + 1}}`, "v").test(text);
}

/** Removes every C0 and C1 control character (tabs and line breaks included) and bidi control (marks too), for one-line values. */
export function stripControlCharacters(value: string): string {
  return value.replace(CONTROLS_ON_ONE_LINE, "");
}
