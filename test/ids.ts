/**
 * Unique ids for test accounts that can never make a registration fail at random. The password
 * policy refuses a password "too similar" to the email or username (quick ratio ≥ 0.7, after
 * Django); with ids in base 36, now and then an id shared enough characters with the test's
 * password to cross that bound (CI failed on `smoke-retry-ocrrqsap@…` against
 * "correct-horse-battery-staple-9"). Ids written only in characters the passwords lack add
 * nothing to the similarity, so whether a test's fixed names pass is decided once, not per run.
 */
const CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789";

/** The characters of CHARACTERS that none of `passwords` contains (case-insensitively). */
export function alphabetAvoiding(...passwords: string[]): string {
  const used = new Set(passwords.join("").toLowerCase());
  const alphabet = [...CHARACTERS].filter((c) => !used.has(c)).join("");
  if (alphabet.length < 4) throw new Error(`the test passwords leave too few characters for ids: ${alphabet}`);
  return alphabet;
}

function encode(n: number, alphabet: string): string {
  let out = "";
  do {
    out = alphabet[n % alphabet.length] + out;
    n = Math.floor(n / alphabet.length);
  } while (n > 0);
  return out;
}

let counter = 0;

/** An id unique across runs and calls (time, a counter, randomness), in the characters `passwords` lack. */
export function uniqueId(...passwords: string[]): string {
  const alphabet = alphabetAvoiding(...passwords);
  const random = encode(Math.floor(Math.random() * alphabet.length ** 4), alphabet).padStart(4, alphabet[0]);
  return `${encode(Date.now(), alphabet)}${encode(counter++, alphabet)}${random}`;
}
