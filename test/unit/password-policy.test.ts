import rankedPasswords from "@zxcvbn-ts/language-common/src/passwords.json";
import { describe, expect, it } from "vitest";
import commonPasswordsText from "../../src/features/auth/common-passwords.txt";
import { checkPasswordPolicy, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from "../../src/features/auth/password-policy";

const none = {};

describe("password policy", () => {
  it("accepts a long, unusual password", () => {
    expect(checkPasswordPolicy("Tr0ub4dor&3-horse", { email: "ada@example.com", username: "ada" })).toEqual([]);
    expect(checkPasswordPolicy("correct horse battery staple", none)).toEqual([]);
  });

  it("requires at least 8 characters", () => {
    expect(PASSWORD_MIN_LENGTH).toBe(8);
    expect(checkPasswordPolicy("xQ3$vbZ", none)).toContain("must be at least 8 characters");
    expect(checkPasswordPolicy("xQ3$vbZk", none)).toEqual([]);
  });

  it("allows at most 128 characters", () => {
    expect(PASSWORD_MAX_LENGTH).toBe(128);
    const long = "Zq9!kL2@".repeat(16);
    expect(checkPasswordPolicy(long, none)).toEqual([]);
    expect(checkPasswordPolicy(`${long}x`, none)).toContain("must be at most 128 characters");
  });

  it("refuses an entirely numeric password", () => {
    expect(checkPasswordPolicy("83920174659", none)).toContain("must not be entirely numeric");
    expect(checkPasswordPolicy("83920174659a", none)).not.toContain("must not be entirely numeric");
  });

  it("refuses one short pattern repeated, and a run of consecutive characters (NIST SP 800-63B 3.1.1.2)", () => {
    for (const password of ["aaaaaaaa", "ZZZZZZZZZZ", "abababab", "abcabcabc", "xyz1xyz1xyz1", "!!!!!!!!"]) {
      expect(checkPasswordPolicy(password, none), password).toContain("must not be one short pattern repeated");
    }
    for (const password of ["abcdefgh", "HGFEDCBA", "mnopqrstu", "9876543210a".slice(0, 10)]) {
      expect(checkPasswordPolicy(password, none), password).toContain("must not be a run of consecutive characters (like abcdefgh)");
    }
    // Neither, though they contain a repeat or a run.
    for (const password of ["aaaaaaaa-Kite7", "abcdefgh-Kite7", "Zq9!kL2@".repeat(16), "xyz1xyz1xyz2"]) {
      expect(checkPasswordPolicy(password, none), password).toEqual([]);
    }
  });

  it("refuses common passwords, whatever their case", () => {
    for (const password of ["password", "PASSWORD", "qwertyuiop", "iloveyou", "12345678"]) {
      expect(checkPasswordPolicy(password, none), password).toContain("is too common");
    }
  });

  it("rejects every one of the 10,000 most common passwords of the maintained source list", () => {
    // The shipped list keeps only entries the length rule does not already reject (see
    // scripts/build-password-list.mjs), so the two rules together must cover the whole top 10,000.
    const top = (rankedPasswords as string[]).slice(0, 10_000);
    expect(top).toHaveLength(10_000);
    const accepted = top.filter((password) => checkPasswordPolicy(password, none).length === 0);
    expect(accepted).toEqual([]);
    const shipped = commonPasswordsText.split("\n").filter(Boolean);
    expect(new Set(shipped).size).toBe(shipped.length);
    expect(shipped.every((p) => p.length >= PASSWORD_MIN_LENGTH)).toBe(true);
  });

  it("refuses a password too similar to the email or its parts", () => {
    expect(checkPasswordPolicy("marguerite.duras!", { email: "marguerite.duras@example.com" })).toContain("is too similar to the email");
    expect(checkPasswordPolicy("Duras1914", { email: "marguerite.duras@example.com" })).toContain("is too similar to the email");
  });

  it("refuses a password too similar to the username", () => {
    expect(checkPasswordPolicy("Bartholomew99", { username: "bartholomew" })).toContain("is too similar to the username");
    expect(checkPasswordPolicy("Bartholomew99", { username: "someone_else" })).toEqual([]);
  });

  it("ignores attributes much shorter than the password and missing attributes", () => {
    expect(checkPasswordPolicy("a-very-long-and-unusual-passphrase", { username: "al", email: null })).toEqual([]);
  });

  it("reports every broken rule at once", () => {
    expect(checkPasswordPolicy("12345678", { username: "12345678" })).toEqual([
      "must not be entirely numeric",
      "must not be a run of consecutive characters (like abcdefgh)",
      "is too common",
      "is too similar to the username",
    ]);
  });
});
