import type { ZodType } from "zod";

export function loadWorkerCode(): Promise<{
  ARGON2_PARAMS: typeof import("../../src/features/auth/password-hash").ARGON2_PARAMS;
  hashPassword: typeof import("../../src/features/auth/password-hash").hashPassword;
  hasherFromEnv: typeof import("../../src/features/auth/password-hash").hasherFromEnv;
  verifyPassword: typeof import("../../src/features/auth/password-hash").verifyPassword;
  checkPasswordPolicy: typeof import("../../src/features/auth/password-policy").checkPasswordPolicy;
  usernameProblem: typeof import("../../src/features/auth/username-policy").usernameProblem;
  EmailSchema: ZodType<string>;
  UsernameSchema: ZodType<string>;
  CONFIG_KEYS: typeof import("../../src/config/config.definitions").CONFIG_KEYS;
  CONFIG_KEY_NAMES: typeof import("../../src/config/config.definitions").CONFIG_KEY_NAMES;
  isConfigKey: typeof import("../../src/config/config.definitions").isConfigKey;
  parseConfigValue: typeof import("../../src/config/config.definitions").parseConfigValue;
  signInsEndedBy: typeof import("../../src/config/config.definitions").signInsEndedBy;
  randomId: typeof import("../../src/lib/crypto").randomId;
}>;
