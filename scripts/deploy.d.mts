import type { WranglerRun } from "./lib/deploy-env.mjs";
export function deployProblems(options: { env: string; configPath?: string; run?: WranglerRun }): Promise<string[]>;
export function deploy(options: {
  env: string;
  dryRun?: boolean;
  configPath?: string;
  run?: WranglerRun;
  log?: (line: string) => void;
  /** The clock (ms) the repairs' window starts from. */
  now?: () => number;
}): Promise<string[][]>;
