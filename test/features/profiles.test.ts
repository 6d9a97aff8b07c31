import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { RATE_LIMITS } from "../../src/lib/rate-limit";
import { probeD1 } from "../d1-wrap";
import { BIDI_CONTROLS, BIDI_FORMATTING, codePoint, harness, unique, ZERO_WIDTH } from "../helpers";

const h = harness();
const PROFILE = "/api/v1/me/profile";

async function activityOf(userId: string, type: string) {
  const { results } = await env.DB.prepare("SELECT details FROM activity WHERE user_id = ? AND type = ? ORDER BY created_at, rowid")
    .bind(userId, type)
    .all<{ details: string }>();
  return results.map((r) => JSON.parse(r.details));
}

async function profileRow(userId: string) {
  return env.DB.prepare("SELECT * FROM profiles WHERE user_id = ?").bind(userId).first<Record<string, unknown>>();
}

/**
 * Inserts verified accounts with profiles directly (registration runs argon2 per user, far too slow
 * for dozens). `createdAt` repeats in pairs so the id tie-break of the order is exercised too.
 */
async function insertAccounts(prefix: string, count: number, start = Date.UTC(2026, 0, 1)) {
  const statements: D1PreparedStatement[] = [];
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${prefix}${String(i).padStart(3, "0")}${unique("i")}`.replace(/[^A-Za-z0-9_-]/g, "");
    ids.push(id);
    const createdAt = start + Math.floor(i / 2) * 1000;
    statements.push(
      env.DB.prepare(
        "INSERT INTO users (id, email, username, password_hash, email_verified, created_at, updated_at) VALUES (?, ?, ?, 'x', 1, ?, ?)",
      ).bind(id, `${id.toLowerCase()}@example.com`, `${prefix}${i}`.toLowerCase(), createdAt, createdAt),
      env.DB.prepare("INSERT INTO profiles (user_id, name, phone_number, age, updated_at) VALUES (?, ?, '+441234567890', 42, ?)").bind(
        id,
        `Person ${i}`,
        createdAt,
      ),
    );
  }
  await env.DB.batch(statements);
  return ids;
}

describe("own profile", () => {
  it("is created with the account, empty, and readable at once", async () => {
    const u = await h.signedInUser();
    expect(await profileRow(u.id)).toMatchObject({ user_id: u.id, name: null, avatar_key: null });
    const res = await h.call("GET", PROFILE, undefined, { token: u.access_token });
    expect(res.status).toBe(200);
    expect(res.json.profile).toEqual({
      name: null,
      surname: null,
      age: null,
      phone_number: null,
      profession: null,
      about_me: null,
      avatar_url: null,
      updated_at: expect.any(String),
    });
  });

  it("creates the profile on first use for an account that has none (made outside registration)", async () => {
    const u = await h.signedInUser();
    await env.DB.prepare("DELETE FROM profiles WHERE user_id = ?").bind(u.id).run();
    const read = await h.call("GET", PROFILE, undefined, { token: u.access_token });
    expect(read.status).toBe(200);
    expect(read.json.profile.name).toBeNull();
    expect(await profileRow(u.id)).toMatchObject({ user_id: u.id });
    expect((await h.call("PATCH", PROFILE, { name: "Ada" }, { token: u.access_token })).json.profile.name).toBe("Ada");
  });

  it("requires a token", async () => {
    expect((await h.call("GET", PROFILE)).status).toBe(401);
    expect((await h.call("PATCH", PROFILE, { name: "Ada" })).status).toBe(401);
  });

  it("is included in GET /me, next to the account fields", async () => {
    const u = await h.signedInUser();
    await h.call("PATCH", PROFILE, { name: "Ada", profession: "Analyst" }, { token: u.access_token });
    const me = await h.call("GET", "/api/v1/me", undefined, { token: u.access_token });
    expect(me.status).toBe(200);
    expect(me.json.user).toMatchObject({ id: u.id, email: u.email, username: u.username });
    expect(me.json.user.profile).toMatchObject({ name: "Ada", profession: "Analyst", age: null, avatar_url: null });
  });

  it("PUT sets every field and clears the ones left out", async () => {
    const u = await h.signedInUser();
    const full = {
      name: "Ada",
      surname: "Lovelace",
      age: 36,
      phone_number: "+442079460958",
      profession: "Mathematician",
      about_me: "Notes.",
    };
    const first = await h.call("PUT", PROFILE, full, { token: u.access_token });
    expect(first.status).toBe(200);
    expect(first.json.profile).toMatchObject(full);
    const second = await h.call("PUT", PROFILE, { name: "Augusta" }, { token: u.access_token });
    expect(second.json.profile).toMatchObject({
      name: "Augusta",
      surname: null,
      age: null,
      phone_number: null,
      profession: null,
      about_me: null,
    });
    expect(await profileRow(u.id)).toMatchObject({ name: "Augusta", surname: null, age: null });
  });

  it("PATCH changes only the fields given, and null clears one", async () => {
    const u = await h.signedInUser();
    await h.call("PUT", PROFILE, { name: "Ada", surname: "Lovelace", age: 36 }, { token: u.access_token });
    const res = await h.call("PATCH", PROFILE, { age: 37, surname: null }, { token: u.access_token });
    expect(res.status).toBe(200);
    expect(res.json.profile).toMatchObject({ name: "Ada", surname: null, age: 37 });
  });

  it("trims text, clears a field given as an empty string, and normalises a phone number", async () => {
    const u = await h.signedInUser();
    await h.call("PATCH", PROFILE, { surname: "Byron" }, { token: u.access_token });
    const res = await h.call(
      "PATCH",
      PROFILE,
      { name: "  Ada  ", surname: "   ", phone_number: " +44 20-7946 0958 ", about_me: " line one\r\nline two\t(tab) " },
      { token: u.access_token },
    );
    expect(res.status).toBe(200);
    expect(res.json.profile).toMatchObject({
      name: "Ada",
      surname: null,
      phone_number: "+442079460958",
      about_me: "line one\nline two\t(tab)",
    });
  });

  it("counts characters, not UTF-16 units: 50 emoji are a valid name", async () => {
    const u = await h.signedInUser();
    const res = await h.call("PATCH", PROFILE, { name: "😀".repeat(50) }, { token: u.access_token });
    expect(res.status).toBe(200);
    expect(res.json.profile.name).toBe("😀".repeat(50));
  });

  it("changes nothing for a request whose sign-in was ended (logout-all) while it was under way: 401", async () => {
    const u = await h.signedInUser();
    const probe = probeD1(env.DB);
    const staged = probe.onceBefore(/update "profiles"/, async () => {
      const owner = await h.login(u.email, u.password);
      expect((await h.call("POST", "/api/v1/auth/logout-all", undefined, { token: owner.access_token })).status).toBe(204);
    });
    const res = await h.call("PATCH", PROFILE, { name: "Mallory" }, { token: u.access_token, env: { ...env, DB: probe.db } });
    expect(staged.done).toBe(true);
    expect(res.status, res.text).toBe(401);
    expect((await profileRow(u.id))?.name).toBeNull();
  });

  describe("characters that draw nothing", () => {
    it("refuses every zero-width and bidi control character in a name, surname or profession, where it would make one person look like another", async () => {
      const u = await h.signedInUser();
      for (const field of ["name", "surname", "profession"]) {
        for (const ch of [...ZERO_WIDTH, ...BIDI_CONTROLS]) {
          const res = await h.call("PATCH", PROFILE, { [field]: `Ad${ch}a` }, { token: u.access_token });
          expect(res.status, `${field} ${codePoint(ch)}`).toBe(400);
          expect(res.json.code).toBe("validation_failed");
          expect(res.json.errors.map((e: { path: string }) => e.path)).toContain(field);
        }
      }
      expect((await profileRow(u.id))?.name).toBeNull();
    });

    it("refuses every other character Unicode marks as drawing nothing (Default_Ignorable_Code_Point) in a name", async () => {
      const u = await h.signedInUser();
      const ignorable = [
        "\u00ad", // soft hyphen
        "\u034f", // combining grapheme joiner
        "\u115f", // Hangul choseong filler
        "\u1160", // Hangul jungseong filler
        "\u17b4", // Khmer inherent vowel
        "\u180e", // Mongolian vowel separator
        "\u2061", // function application
        "\u2063", // invisible separator
        "\u2064", // invisible plus
        "\u3164", // Hangul filler
        "\uffa0", // half-width Hangul filler
        "\u{e0041}", // a tag character outside a flag
        "\ufe00", // a variation selector after a Latin letter
        "\u{e0100}", // an ideographic variation selector after a Latin letter
        "\u2800", // the blank Braille pattern: a printable character that draws nothing
      ];
      // A selector where it selects nothing: after a plain digit (no keycap), after an emoji that
      // has no text form (no variation sequence: 😀 is drawn alike with either), and tags after a
      // black flag that make no flag of the emoji set (it is drawn as the bare flag).
      for (const name of ["Ada1\ufe0f", "Ada #\ufe0f", "Ada 😀\ufe0f", "Ada 😀\ufe0e", "🏴\u{e0078}\u{e0078}\u{e007f}"]) {
        expect((await h.call("PATCH", PROFILE, { name }, { token: u.access_token })).status, [...name].map(codePoint).join(" ")).toBe(400);
      }
      for (const ch of ignorable) {
        for (const name of [`Ad${ch}a`, ch]) {
          const res = await h.call("PATCH", PROFILE, { name }, { token: u.access_token });
          expect(res.status, codePoint(ch)).toBe(400);
          expect(res.json.errors.map((e: { path: string }) => e.path)).toContain("name");
        }
      }
      // Where one changes what is drawn, it stays: an emoji's presentation, a keycap, a subdivision
      // flag's tags, a Japanese family name's ideographic variant, a Mongolian letter's variant form.
      for (const name of [
        "Ada ❤️",
        "Ada ⌚\ufe0e", // the text form of a character drawn as an emoji by default
        "1️⃣ Ada",
        "🏴\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}",
        "🏴\u{e0067}\u{e0062}\u{e0077}\u{e006c}\u{e0073}\u{e007f}",
        "葛\u{e0100}城",
        "ᠠ\u180b",
      ]) {
        const res = await h.call("PATCH", PROFILE, { name }, { token: u.access_token });
        expect(res.status, [...name].map(codePoint).join(" ")).toBe(200);
        expect(res.json.profile.name).toBe(name);
      }
    });

    it("refuses more than eight marks stacked on one character in a name (text drawn over the lines around it), keeping the scripts that stack a few", async () => {
      const u = await h.signedInUser();
      const zalgo = `A${"\u0316\u0334\u0359".repeat(3)}da`; // nine marks on the A (none composes with it)
      const res = await h.call("PATCH", PROFILE, { name: zalgo }, { token: u.access_token });
      expect(res.status).toBe(400);
      expect(res.json.errors).toEqual([
        expect.objectContaining({ path: "name", message: "must not stack more than 8 marks on one character" }),
      ]);
      // Vietnamese (two on one letter after NFD), pointed Hebrew with cantillation, a Tibetan stack.
      for (const name of ["Nguyê\u0303n".normalize("NFD"), "בְּרֵאשִׁ֖ית", "བསྒྲུབས", `A${"\u0301".repeat(8)}`]) {
        const ok = await h.call("PATCH", PROFILE, { name }, { token: u.access_token });
        expect(ok.status, [...name].map(codePoint).join(" ")).toBe(200);
      }
    });

    it("counts the marks on one character across the joiners between them, which draw nothing and so do not end the stack", async () => {
      const u = await h.signedInUser();
      // Six accents, a mark NFC cannot move (so the virama stays last), a virama, and the joiner a
      // virama may take: five times over, forty marks on the x in unbroken runs of eight.
      const group = `${"\u0301".repeat(6)}\u0902\u094d\u200d`;
      const res = await h.call("PATCH", PROFILE, { name: `x${group.repeat(5)}` }, { token: u.access_token });
      expect(res.status).toBe(400);
      expect(res.json.errors).toEqual([
        expect.objectContaining({ path: "name", message: "must not stack more than 8 marks on one character" }),
      ]);
      expect((await profileRow(u.id))?.name).toBeNull();
    });

    it("stores the spaces of a name as one plain space each run, so no-break and typographic spaces (drawn alike) make no look-alike", async () => {
      const u = await h.signedInUser();
      // U+1680, the Ogham space mark, is a space (Zs) too, drawn as a dash only in Ogham fonts.
      for (const name of [
        "Ada\u00a0Lovelace",
        "Ada\u2002Lovelace",
        "Ada\u202fLovelace",
        "Ada  Lovelace",
        "Ada \u2009 Lovelace",
        "Ada\u1680Lovelace",
      ]) {
        const res = await h.call("PATCH", PROFILE, { name }, { token: u.access_token });
        expect(res.status, [...name].map(codePoint).join(" ")).toBe(200);
        expect(res.json.profile.name).toBe("Ada Lovelace");
      }
      // The ideographic space of a Japanese name is its own, wider character: kept.
      const japanese = await h.call("PATCH", PROFILE, { name: "山田\u3000太郎" }, { token: u.access_token });
      expect(japanese.json.profile.name).toBe("山田\u3000太郎");
      // Prose keeps its spacing as written.
      const prose = await h.call("PATCH", PROFILE, { about_me: "Two  spaces\u00a0here." }, { token: u.access_token });
      expect(prose.json.profile.about_me).toBe("Two  spaces\u00a0here.");
    });

    it("refuses a line or paragraph separator in a name, surname or profession as it refuses a newline, and keeps it in about_me as one", async () => {
      const u = await h.signedInUser();
      const tag = unique("Ls");
      for (const field of ["name", "surname", "profession"]) {
        for (const separator of ["\n", "\u2028", "\u2029"]) {
          const res = await h.call("PATCH", PROFILE, { [field]: `${tag}${separator}Lovelace` }, { token: u.access_token });
          expect(res.status, `${field} ${codePoint(separator)}`).toBe(400);
          expect(res.json.errors).toEqual([expect.objectContaining({ path: field, message: "must not contain control characters" })]);
        }
      }
      expect(await profileRow(u.id)).toMatchObject({ name: null, surname: null, profession: null });
      const prose = await h.call("PATCH", PROFILE, { about_me: "One line.\u2028Another.\u2029A paragraph." }, { token: u.access_token });
      expect(prose.json.profile.about_me).toBe("One line.\nAnother.\nA paragraph.");
    });

    it("keeps the joiner of a recommended (RGI) emoji sequence in a name, and refuses it anywhere else", async () => {
      const u = await h.signedInUser();
      for (const name of ["Ada 👩\u200D💻", "🏳️\u200D🌈", "👩🏽\u200D🚀 Ada", "❤️\u200D🔥", "👨\u200D👩\u200D👧"]) {
        const res = await h.call("PATCH", PROFILE, { name }, { token: u.access_token });
        expect(res.status, name).toBe(200);
        expect(res.json.profile.name).toBe(name);
      }
      // Between pictographs that make no sequence of the emoji set, a joiner draws them side by side as without it.
      for (const name of ["A\u200Dda", "👩\u200D", "\u200D👩", "👩\u200Da", "a\u200D👩", "Ada ©\u200D©", "Ada 😀\u200D😀"]) {
        expect((await h.call("PATCH", PROFILE, { name }, { token: u.access_token })).status, name).toBe(400);
      }
    });

    it("keeps a joiner or non-joiner where a script's spelling needs one (RFC 5892 CONTEXTJ), and refuses it where it would draw nothing", async () => {
      const u = await h.signedInUser();
      const written = [
        "علی\u200Cاکبر", // Persian: the non-joiner after a dual-joining yeh, before an alef
        "می\u200Cخواهم",
        "ශ්\u200Dරී", // Sinhala "Sri": a joiner after the al-lakuna (virama) makes the conjunct
        "क्\u200Cष", // Devanagari: a non-joiner after the virama keeps the halant visible
        "क्\u200Dष", // Devanagari: a joiner after the virama asks for the half form of ka in the conjunct
        "क्\u200D", // the half form on its own, at the end of a word
        "ന്\u200D", // Malayalam: the chillu n as Unicode 5.0 spelt it, at the end of a word
        "ক্\u200Dয", // Bengali: a joiner after the hasanta
      ];
      for (const name of written) {
        const res = await h.call("PATCH", PROFILE, { name }, { token: u.access_token });
        expect(res.status, [...name].map(codePoint).join(" ")).toBe(200);
        expect(res.json.profile.name).toBe(name);
      }
      const invisible = [
        "ا\u200Cب", // after a right-joining alef, which joins nothing forward anyway
        "\u200Cعلی", // leading
        "علی\u200C", // trailing
        "می\u200C\u200Cخواهم", // doubled
        "می\u200Dخواهم", // a joiner between Arabic letters (joined already)
        "ශ\u200Dර", // Sinhala without the virama
        "Ad\u200Ca",
        "Ada\u094D\u200D", // a Devanagari virama on a Latin letter: it makes no conjunct and no half form
        "Ada\u094D\u200Cक",
        "क्\u200Ca", // a non-joiner before a Latin letter: there is no conjunct to keep apart
        "क्\u200C", // or at the end of a word, where the virama shows anyway
      ];
      for (const name of invisible) {
        const res = await h.call("PATCH", PROFILE, { name }, { token: u.access_token });
        expect(res.status, [...name].map(codePoint).join(" ")).toBe(400);
      }
      expect((await profileRow(u.id))?.name).toBe(written.at(-1));
    });

    it("refuses an over-long name by its length before looking at its characters (a long run of marks costs no more than the limit)", async () => {
      const u = await h.signedInUser();
      const res = await h.call("PATCH", PROFILE, { name: `a${"\u0301".repeat(30_000)}\u200Cب` }, { token: u.access_token });
      expect(res.status).toBe(400);
      expect(res.json.errors).toEqual([expect.objectContaining({ path: "name", message: "must be at most 50 characters" })]);
    });

    it("refuses more than 16 marks stacked on one character in about_me, counted across the zero-width characters between them", async () => {
      const u = await h.signedInUser();
      for (const about_me of [`x${"\u0301\u0316".repeat(999)}`, `x${"\u0301".repeat(17)}`, `x${`${"\u0301".repeat(6)}\u200d`.repeat(3)}`]) {
        const res = await h.call("PATCH", PROFILE, { about_me }, { token: u.access_token });
        expect(res.status).toBe(400);
        expect(res.json.errors).toEqual([
          expect.objectContaining({ path: "about_me", message: "must not stack more than 16 marks on one character" }),
        ]);
      }
      expect((await profileRow(u.id))?.about_me).toBeNull();
      const ok = await h.call("PATCH", PROFILE, { about_me: `x${"\u0301\u0316".repeat(8)}` }, { token: u.access_token });
      expect(ok.status).toBe(200);
    });

    it("refuses bidi formatting characters in about_me but keeps the marks and zero-width characters prose needs", async () => {
      const u = await h.signedInUser();
      for (const ch of BIDI_FORMATTING) {
        const res = await h.call("PATCH", PROFILE, { about_me: `hello ${ch}world` }, { token: u.access_token });
        expect(res.status, codePoint(ch)).toBe(400);
        expect(res.json.errors.map((e: { path: string }) => e.path)).toContain("about_me");
      }
      // Persian writes "I want" with a zero-width non-joiner; an emoji sequence needs its joiner.
      const prose = "می\u200Cخواهم 👩\u200D💻\nI wrote «سلام!»\u200F here.";
      const res = await h.call("PATCH", PROFILE, { about_me: prose }, { token: u.access_token });
      expect(res.status).toBe(200);
      expect(res.json.profile.about_me).toBe(prose);
    });
  });

  const invalid: [string, Record<string, unknown>, string][] = [
    ["name over 50 characters", { name: "a".repeat(51) }, "name"],
    ["surname over 50 characters", { surname: "b".repeat(51) }, "surname"],
    ["profession over 100 characters", { profession: "c".repeat(101) }, "profession"],
    ["about_me over 2000 characters", { about_me: "d".repeat(2001) }, "about_me"],
    ["a control character in a name", { name: "Ada\u0007" }, "name"],
    ["a newline in a surname", { surname: "Love\nlace" }, "surname"],
    ["a bidi override in about_me", { about_me: "hello \u202e dlrow" }, "about_me"],
    ["a number as a name", { name: 42 }, "name"],
    ["a negative age", { age: -1 }, "age"],
    ["an age over 150", { age: 151 }, "age"],
    ["a fractional age", { age: 30.5 }, "age"],
    ["an age given as a string", { age: "30" }, "age"],
    ["a phone number without +", { phone_number: "442079460958" }, "phone_number"],
    ["a phone number with 7 digits", { phone_number: "+1234567" }, "phone_number"],
    ["a phone number with 16 digits", { phone_number: "+1234567890123456" }, "phone_number"],
    ["a phone number with letters", { phone_number: "+44 20 CALL ME" }, "phone_number"],
    ["a phone number starting with +0", { phone_number: "+0123456789" }, "phone_number"],
    ["an unknown field", { nickname: "ada" }, "nickname"],
    ["a field that is not editable", { avatar_key: "avatars/x/evil.png" }, "avatar_key"],
  ];
  for (const [what, body, field] of invalid) {
    it(`refuses ${what} with a 400 naming ${field}, writing nothing`, async () => {
      const u = await h.signedInUser();
      await h.call("PATCH", PROFILE, { name: "Before" }, { token: u.access_token });
      const before = await profileRow(u.id);
      for (const method of ["PUT", "PATCH"]) {
        const res = await h.call(method, PROFILE, { ...body }, { token: u.access_token });
        expect(res.status).toBe(400);
        expect(res.json.code).toBe("validation_failed");
        expect(res.json.errors.map((e: { path: string }) => e.path)).toContain(field);
      }
      expect(await profileRow(u.id)).toEqual(before);
      expect(await activityOf(u.id, "profile_updated")).toHaveLength(1);
    });
  }

  it("accepts the boundary values", async () => {
    const u = await h.signedInUser();
    const body = {
      name: "n".repeat(50),
      surname: "s".repeat(50),
      age: 150,
      phone_number: "+123456789012345",
      profession: "p".repeat(100),
      about_me: "a".repeat(2000),
    };
    const res = await h.call("PUT", PROFILE, body, { token: u.access_token });
    expect(res.status).toBe(200);
    expect(res.json.profile).toMatchObject(body);
    expect((await h.call("PATCH", PROFILE, { age: 0, phone_number: "+12345678" }, { token: u.access_token })).status).toBe(200);
  });

  it("takes at most 30 changes a minute per account, profile edits and avatar changes together (429 after)", async () => {
    const u = await h.signedInUser();
    const { limit, windowMs } = RATE_LIMITS.profileChangesPerUser;
    for (let i = 0; i < limit; i++) {
      expect((await h.call("PATCH", PROFILE, { name: `Name ${i}` }, { token: u.access_token })).status, `change ${i + 1}`).toBe(200);
    }
    // A no-op is no change, and is not counted.
    expect((await h.call("PATCH", PROFILE, { name: `Name ${limit - 1}` }, { token: u.access_token })).status).toBe(200);
    const over = await h.call("PATCH", PROFILE, { name: "One too many" }, { token: u.access_token });
    expect(over.status).toBe(429);
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(0);
    const gif = Uint8Array.from([
      71, 73, 70, 56, 57, 97, 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 255, 255, 255, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0, 0x3b,
    ]);
    const upload = await h.call("PUT", "/api/v1/me/avatar", undefined, {
      token: u.access_token,
      raw: gif,
      headers: { "content-type": "image/gif" },
    });
    expect(upload.status).toBe(429);
    expect((await profileRow(u.id))?.name).toBe(`Name ${limit - 1}`);
    expect(await activityOf(u.id, "profile_updated")).toHaveLength(limit);
    h.clock.advance(windowMs);
    const fresh = await h.login(u.email, u.password);
    expect((await h.call("PATCH", PROFILE, { name: "Later" }, { token: fresh.access_token })).status).toBe(200);
  });

  it("records profile_updated with the names of the changed fields only, and nothing for a no-op", async () => {
    const u = await h.signedInUser();
    await h.call("PUT", PROFILE, { name: "Ada", age: 36 }, { token: u.access_token });
    await h.call("PATCH", PROFILE, { name: "Ada", age: 37 }, { token: u.access_token });
    await h.call("PATCH", PROFILE, { name: "Ada" }, { token: u.access_token });
    await h.call("PATCH", PROFILE, {}, { token: u.access_token });
    const entries = await activityOf(u.id, "profile_updated");
    expect(entries).toEqual([{ fields: ["name", "age"] }, { fields: ["age"] }]);
    expect(JSON.stringify(entries)).not.toContain("Ada");
  });

  it("updates updated_at only when something changed", async () => {
    const u = await h.signedInUser();
    const first = await h.call("PATCH", PROFILE, { name: "Ada" }, { token: u.access_token });
    h.clock.advance(5_000);
    const same = await h.call("PATCH", PROFILE, { name: "Ada" }, { token: u.access_token });
    expect(same.json.profile.updated_at).toBe(first.json.profile.updated_at);
    const changed = await h.call("PATCH", PROFILE, { name: "Augusta" }, { token: u.access_token });
    expect(Date.parse(changed.json.profile.updated_at)).toBe(Date.parse(first.json.profile.updated_at) + 5_000);
  });

  it("refuses a body that is not JSON", async () => {
    const u = await h.signedInUser();
    const res = await h.call("PATCH", PROFILE, undefined, {
      token: u.access_token,
      raw: "name=Ada",
      headers: { "content-type": "text/plain" },
    });
    expect(res.status).toBe(415);
  });
});

describe("public directory", () => {
  const PUBLIC_KEYS = ["about_me", "avatar_url", "name", "profession", "surname", "user_id", "username"];

  it("pages through every matching profile in registration order over three pages", async () => {
    const prefix = unique("dir").toLowerCase();
    const ids = await insertAccounts(prefix, 45);
    const seen: string[] = [];
    let cursor: string | null = null;
    const sizes: number[] = [];
    do {
      const query: string = `?q=${prefix}${cursor ? `&cursor=${cursor}` : ""}`;
      const res = await h.call("GET", `/api/v1/profiles${query}`);
      expect(res.status).toBe(200);
      sizes.push(res.json.items.length);
      for (const item of res.json.items) {
        expect(Object.keys(item).sort()).toEqual(PUBLIC_KEYS);
        seen.push(item.user_id);
      }
      cursor = res.json.next_cursor;
    } while (cursor);
    expect(sizes).toEqual([20, 20, 5]);
    // Pairs share created_at: the id breaks the tie, so the order is (created_at, id).
    const expected = ids
      .map((id, i) => ({ id, t: Math.floor(i / 2) }))
      .sort((a, b) => a.t - b.t || (a.id < b.id ? -1 : 1))
      .map((x) => x.id);
    expect(seen).toEqual(expected);
  });

  it("counts a search (q) against the client IP's directory allowance, as the website's directory pages are; plain pages are not counted", async () => {
    const { limit, windowMs } = RATE_LIMITS.directoryReadsPerIp;
    const ip = { headers: { "cf-connecting-ip": "198.51.100.150" } };
    for (let i = 0; i < limit; i++) expect((await h.call("GET", "/api/v1/profiles?q=zz", undefined, ip)).status).toBe(200);
    const over = await h.call("GET", "/api/v1/profiles?q=zz", undefined, ip);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(0);
    // A page without a search walks an index: still answered.
    expect((await h.call("GET", "/api/v1/profiles?limit=1", undefined, ip)).status).toBe(200);
    h.clock.advance(windowMs);
    expect((await h.call("GET", "/api/v1/profiles?q=zz", undefined, ip)).status).toBe(200);
  });

  it("honours limit and refuses one out of range", async () => {
    const prefix = unique("lim").toLowerCase();
    await insertAccounts(prefix, 3);
    const two = await h.call("GET", `/api/v1/profiles?q=${prefix}&limit=2`);
    expect(two.json.items).toHaveLength(2);
    expect(two.json.next_cursor).toEqual(expect.any(String));
    const rest = await h.call("GET", `/api/v1/profiles?q=${prefix}&limit=2&cursor=${two.json.next_cursor}`);
    expect(rest.json.items).toHaveLength(1);
    expect(rest.json.next_cursor).toBeNull();
    for (const limit of ["0", "101", "abc", "2.5"]) {
      const res = await h.call("GET", `/api/v1/profiles?limit=${limit}`);
      expect(res.status).toBe(400);
      expect(res.json.errors[0].path).toBe("limit");
    }
    const all = await h.call("GET", "/api/v1/profiles?limit=100");
    expect(all.status).toBe(200);
  });

  it("defaults to 20 per page", async () => {
    await insertAccounts(unique("def").toLowerCase(), 21);
    const res = await h.call("GET", "/api/v1/profiles");
    expect(res.json.items).toHaveLength(20);
    expect(res.json.next_cursor).not.toBeNull();
  });

  it("answers a bad cursor with 400 invalid_cursor", async () => {
    const forged = btoa(JSON.stringify({ t: "x", id: "'; DROP TABLE users; --" })).replace(/=+$/, "");
    for (const cursor of ["not*a*cursor", "AAAA", forged, encodeCursorLike([1, 2]), "x".repeat(400)]) {
      const res = await h.call("GET", `/api/v1/profiles?cursor=${encodeURIComponent(cursor)}`);
      expect(res.status).toBe(400);
      expect(res.json.code).toBe("invalid_cursor");
    }
  });

  it("answers an altered or made-up cursor with 400, and its cursor tells nothing: cursors are sealed", async () => {
    await insertAccounts(unique("sig").toLowerCase(), 3);
    const first = await h.call("GET", "/api/v1/profiles?limit=1");
    const real = first.json.next_cursor as string;
    expect((await h.call("GET", `/api/v1/profiles?limit=1&cursor=${real}`)).status).toBe(200);
    const bytes = Uint8Array.from(atob(real.replace(/-/g, "+").replace(/_/g, "/")), (ch) => ch.charCodeAt(0));
    const flipped = (index: number) => {
      const copy = bytes.slice();
      copy[index] = (copy[index] ?? 0) ^ 1;
      return btoa(String.fromCharCode(...copy))
        .replace(/\+/g, "-")
        .replace(/\//g, "_")
        .replace(/=+$/, "");
    };
    // A bit changed in the nonce, the sealed position or the tag; cut short; a position in clear.
    for (const cursor of [
      flipped(0),
      flipped(14),
      flipped(bytes.length - 1),
      real.slice(0, 40),
      encodeCursorLike([0, "AAAAAAAAAAAAAAAAAAAAAA"]),
    ]) {
      const res = await h.call("GET", `/api/v1/profiles?limit=1&cursor=${encodeURIComponent(cursor)}`);
      expect(res.status).toBe(400);
      expect(res.json.code).toBe("invalid_cursor");
    }
    // The public view leaves out when an account registered; so does the cursor.
    const last = first.json.items[0] as { user_id: string };
    const row = await env.DB.prepare("SELECT created_at FROM users WHERE id = ?").bind(last.user_id).first<{ created_at: number }>();
    const createdAt = row?.created_at;
    expect(createdAt).toBeGreaterThan(0);
    expect(new TextDecoder("latin1").decode(bytes)).not.toContain(String(createdAt));
    expect(new TextDecoder("latin1").decode(bytes)).not.toContain(last.user_id);
  });

  it("refuses a cursor on any list but the one that made it: the directory's would place a registration time among the timeline's", async () => {
    await insertAccounts(unique("cx").toLowerCase(), 3);
    const directory = (await h.call("GET", "/api/v1/profiles?limit=1")).json.next_cursor as string;
    const u = await h.signedInUser();
    await h.call("POST", "/api/v1/statuses", { content: "one" }, { token: u.access_token });
    await h.call("POST", "/api/v1/statuses", { content: "two" }, { token: u.access_token });
    const timeline = (await h.call("GET", "/api/v1/statuses?limit=1")).json.next_cursor as string;
    for (const [path, foreign] of [
      ["/api/v1/statuses", directory],
      ["/api/v1/me/activity", directory],
      ["/api/v1/profiles", timeline],
    ] as const) {
      const res = await h.call("GET", `${path}?limit=1&cursor=${foreign}`, undefined, { token: u.access_token });
      expect(res.status, path).toBe(400);
      expect(res.json.code).toBe("invalid_cursor");
    }
    expect((await h.call("GET", `/api/v1/statuses?limit=1&cursor=${timeline}`)).status).toBe(200);
  });

  it("shows public fields only: never email, phone number or age", async () => {
    const u = await h.signedInUser();
    await h.call(
      "PUT",
      PROFILE,
      { name: "Grace", surname: "Hopper", age: 85, phone_number: "+12025550123", profession: "Admiral", about_me: "COBOL" },
      { token: u.access_token },
    );
    const res = await h.call("GET", `/api/v1/profiles/${u.id}`);
    expect(res.status).toBe(200);
    expect(res.json.profile).toEqual({
      user_id: u.id,
      username: u.username,
      name: "Grace",
      surname: "Hopper",
      profession: "Admiral",
      about_me: "COBOL",
      avatar_url: null,
    });
    const listed = await h.call("GET", `/api/v1/profiles?q=${u.username}`);
    expect(listed.json.items).toEqual([res.json.profile]);
    expect(listed.text).not.toContain(u.email);
    expect(listed.text).not.toContain("+12025550123");
    // As a JSON value, not as two digits anywhere: ids and the sealed cursor are random text.
    expect(listed.text).not.toContain('"age"');
    expect(listed.text).not.toMatch(/[:[,]85[,}\]]/);
  });

  it("hides unverified and disabled accounts from the list and the single read", async () => {
    const prefix = unique("hid").toLowerCase();
    const [visible, unverified, disabled] = (await insertAccounts(prefix, 3)) as [string, string, string];
    await env.DB.prepare("UPDATE users SET email_verified = 0 WHERE id = ?").bind(unverified).run();
    await env.DB.prepare("UPDATE users SET is_active = 0 WHERE id = ?").bind(disabled).run();
    const res = await h.call("GET", `/api/v1/profiles?q=${prefix}`);
    expect(res.json.items.map((i: { user_id: string }) => i.user_id)).toEqual([visible]);
    expect((await h.call("GET", `/api/v1/profiles/${visible}`)).status).toBe(200);
    expect((await h.call("GET", `/api/v1/profiles/${unverified}`)).status).toBe(404);
    expect((await h.call("GET", `/api/v1/profiles/${disabled}`)).status).toBe(404);
    expect((await h.call("GET", "/api/v1/profiles/no-such-user")).status).toBe(404);
  });

  it("searches by username or name prefix, case-insensitively, with LIKE wildcards taken literally", async () => {
    const prefix = unique("q").toLowerCase();
    const [a, b, c] = (await insertAccounts(prefix, 3)) as [string, string, string];
    const name = `Zed${prefix}`;
    await env.DB.prepare("UPDATE users SET username = ? WHERE id = ?").bind(`${prefix}x_1`, a).run();
    await env.DB.prepare("UPDATE users SET username = ? WHERE id = ?").bind(`${prefix}xa1`, b).run();
    await env.DB.prepare("UPDATE profiles SET name = ? WHERE user_id = ?").bind(name, c).run();
    const ids = async (q: string) =>
      (await h.call("GET", `/api/v1/profiles?q=${encodeURIComponent(q)}`)).json.items.map((i: { user_id: string }) => i.user_id);
    expect(await ids(`${prefix}x_`)).toEqual([a]);
    expect(await ids(`${prefix}x`)).toEqual([a, b]);
    expect(await ids(`${prefix.toUpperCase()}XA`)).toEqual([b]);
    expect(await ids(`zed${prefix}`)).toEqual([c]);
    expect(await ids(`${prefix}%`)).toEqual([]);
    expect(await ids("%")).toEqual([]);
    expect((await h.call("GET", `/api/v1/profiles?q=${encodeURIComponent("a\u0000")}`)).status).toBe(400);
  });
});

/** A syntactically valid base64url cursor whose content is not a position. */
function encodeCursorLike(value: unknown): string {
  return btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
