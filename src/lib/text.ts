import { EMOJI_VARIATION_BASES, JOINS_BACKWARD, JOINS_FORWARD, VIRAMA, VIRAMA_SCRIPT } from "./joiners.generated";

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
 * The emoji sequences whose ignorables draw something (UTS #51 ED-17, ED-14c, ED-14a), matched
 * whole: the recommended (RGI) ZWJ sequences, where a joiner draws two pictographs as one (👩‍💻,
 * 🏳️‍🌈), keycaps (1️⃣) and the three subdivision flags (England, Scotland, Wales). Between
 * pictographs that make no recommended sequence (😀‍😀, ©‍©) a joiner draws nothing: the two
 * stand side by side as without it; other tags draw the bare black flag. These are Unicode's own
 * sets, which V8 knows as properties of strings (the `v` flag; workerd and Node 20 alike).
 */
const EMOJI_SEQUENCES = "\\p{RGI_Emoji_ZWJ_Sequence}|\\p{Emoji_Keycap_Sequence}|\\p{RGI_Emoji_Tag_Sequence}";
/**
 * Joining_Type Transparent, near enough: the marks a joining context skips. At most a few: a
 * letter carries two or three (harakat), and an unbounded run inside a lookbehind would re-read
 * the whole run at every position (quadratic time on a string of marks).
 */
const TRANSPARENT = "[\\p{Mn}\\p{Me}]{0,4}";
/**
 * A joiner after a virama (RFC 5892 Appendix A.1, A.2), where it picks between a conjunct, a half
 * form and a visible virama (Sinhala "Sri" ශ්‍රී, Devanagari क्‌ष and क्‍ष). The groups name what
 * viramaJoinerDraws needs: the letter the virama is on (a nukta or so between), and what follows.
 */
const VIRAMA_JOINER = `(?<=(?<base>\\p{L})\\p{M}{0,2}(?<virama>${VIRAMA}))(?<joiner>[\\u200c\\u200d])(?=(?<next>[\\p{L}\\p{M}])?)`;
type ViramaJoiner = { base: string; virama: string; joiner: string; next?: string };

/** Each virama script's letter test, compiled once. */
const ofScripts = new Map<string, RegExp>();

/**
 * Whether a joiner after a virama draws something: only when the virama is on a letter of its own
 * script and a letter of that script follows the joiner. A joiner (not a non-joiner) may also end a
 * word, where it draws a half form (क्‍; The Unicode Standard §12.1, explicit half-consonants) or
 * a Malayalam chillu as Unicode 5.0 spelt it (ന്‍, §12.9). After a virama on a Latin letter, or
 * with nothing to join or keep apart, it draws nothing. The script is tested here rather than in
 * the pattern: fifty scripts' letter classes in one lookbehind cost V8 some 70 ms to compile.
 */
function viramaJoinerDraws({ base, virama, joiner, next }: ViramaJoiner): boolean {
  const script = VIRAMA_SCRIPT[virama.codePointAt(0) ?? 0];
  if (script === undefined) return false; // every VIRAMA has its script in the generated table
  let ofScript = ofScripts.get(script);
  if (!ofScript) {
    ofScript = new RegExp(`^\\p{Script_Extensions=${script}}$`, "u");
    ofScripts.set(script, ofScript);
  }
  if (!ofScript.test(base)) return false;
  return next === undefined ? joiner === "\u200d" : /\p{L}/u.test(next) && ofScript.test(next);
}
/**
 * The joiners scripts are spelt with, as IDNA allows them in domain names (RFC 5892 Appendix A.1,
 * A.2): either one after a virama (VIRAMA_JOINER); a non-joiner between a letter that joins
 * forward and one that joins back, which it keeps apart (Persian علی‌اکبر, می‌خواهم). There each
 * draws something; anywhere else (after a right-joining alef, doubled, at an end, in Latin) it
 * would draw nothing, and is refused.
 */
const SPELLING_JOINERS = [VIRAMA_JOINER, `(?<=${JOINS_FORWARD}${TRANSPARENT})\\u200c(?=${TRANSPARENT}${JOINS_BACKWARD})`];
/**
 * The other ignorables that select what is drawn, after the characters they act on: the text or
 * emoji presentation of a pictograph that has both (❤️, ⌚︎; emoji-variation-sequences.txt: 😀 has
 * no text form, and either selector after it draws nothing; the keycap bases #, * and the digits
 * have one only inside a keycap, EMOJI_SEQUENCES), a Han ideograph's variant (the exact glyph of a
 * Japanese family name: 葛󠄀, UTS #37), and a Mongolian letter's variant form.
 */
const VARIATION_SELECTORS = [
  `(?<=[${EMOJI_VARIATION_BASES}&&\\p{Extended_Pictographic}])[\\ufe0e\\ufe0f]`,
  "(?<=\\p{Script=Han})(?:[\\ufe00-\\ufe0f]|[\\u{e0100}-\\u{e01ef}])",
  "(?<=\\p{Script=Mongolian})[\\u180b-\\u180d\\u180f]",
];
/**
 * Built on first use, not when the module loads: V8 takes some milliseconds to parse the emoji
 * sets and as many again to compile them, which no request that checks no name should pay.
 */
let drawnIgnorables: RegExp | undefined;

/** Whether cleaned text meant as a name holds a character that draws nothing (see INVISIBLE). */
export function hasInvisibleCharacters(text: string): boolean {
  // Most names hold no ignorable at all, and need not be matched against the emoji sets.
  if (!INVISIBLE.test(text)) return false;
  // The emoji sequences first: a sequence is taken whole, its joiners and selectors with it. The
  // lookbehinds read the text as given, so what one match removes changes no other.
  drawnIgnorables ??= new RegExp([EMOJI_SEQUENCES, ...SPELLING_JOINERS, ...VARIATION_SELECTORS].join("|"), "gv");
  const kept = text.replace(drawnIgnorables, (match, ...rest) => {
    const groups = rest.at(-1) as Partial<ViramaJoiner>;
    return groups.virama === undefined || viramaJoinerDraws(groups as ViramaJoiner) ? "" : match;
  });
  return INVISIBLE.test(kept);
}

/**
 * What may lie between two marks on one character without ending the stack: the characters that
 * draw nothing and take no room (joiners, tags, the zero-width space, …: the format characters and
 * the other default ignorables), so the marks after one are drawn on the same character as those
 * before it. The marks among them (variation selectors, the grapheme joiner) count as marks.
 */
const STACK_GAP = "[[\\p{Cf}\\p{Default_Ignorable_Code_Point}]--\\p{M}]";

/**
 * The most combining marks one character may carry. A name: pointed Hebrew with cantillation,
 * Vietnamese and Tibetan stacks carry a few, while dozens ("Zalgo" text) are drawn over the lines
 * above and below, across other people's names in a list. Prose twice that: it may quote what a
 * name never holds (Biblical Hebrew with its accents, Vedic Sanskrit, a phonetic transcription),
 * and Zalgo text still needs many more to reach across the statuses or lines around it.
 */
export const MAX_STACKED_MARKS = { identity: 8, prose: 16 } as const;
const tooManyMarks: Partial<Record<keyof typeof MAX_STACKED_MARKS, RegExp>> = {};

/**
 * Why text stacks too many marks on one character for its kind, or null. Marks are counted across
 * the characters between them that draw nothing (STACK_GAP). The work is bounded by the text's
 * length times the limit: each mark starts one attempt of one mark more than the limit.
 */
export function stackedMarksProblem(text: string, kind: keyof typeof MAX_STACKED_MARKS): string | null {
  const max = MAX_STACKED_MARKS[kind];
  // Compiled once per kind, on first use: every name field and status is checked.
  tooManyMarks[kind] ??= new RegExp(`(?:\\p{M}${STACK_GAP}*){${max + 1}}`, "v");
  return tooManyMarks[kind].test(text) ? `must not stack more than ${max} marks on one character` : null;
}

/** Removes every C0 and C1 control character (tabs and line breaks included) and bidi control (marks too), for one-line values. */
export function stripControlCharacters(value: string): string {
  return value.replace(CONTROLS_ON_ONE_LINE, "");
}
