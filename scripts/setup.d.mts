import type { WranglerRun } from "./lib/deploy-env.mjs";
export function setup(options: {
  env: string;
  dryRun?: boolean;
  configPath?: string;
  run?: WranglerRun;
  log?: (line: string) => void;
  mailApiKey?: string;
  askSecret?: (question: string) => Promise<string>;
  /** Where the JWT_KEYS set is kept (default ~/.latchkey/<env>.vars). */
  keysFile?: string;
}): Promise<{ executed: string[][]; planned: string[][] }>;
export function defaultKeysFile(env: string): string;
