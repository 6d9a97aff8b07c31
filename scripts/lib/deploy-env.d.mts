export type WranglerRun = (args: string[], options?: { input?: string }) => Promise<string>;
export interface DeployEnvironment {
  name: string;
  workerName: string;
  vars: Record<string, string>;
  d1: { name: string; id: string };
  kv: { title: string; id: string };
  r2: { bucket: string };
  queue: string;
  deadLetterQueue: string;
  maxRetries: number | undefined;
}
export const DEPLOY_ENVS: string[];
export function isPlaceholderId(id: unknown): boolean;
export const wranglerRunner: WranglerRun;
export function configArgs(configPath: string): string[];
export function showCommand(args: string[]): string;
export function readEnvironment(configPath: string, name: string): DeployEnvironment;
export function requiredSecrets(vars: Record<string, string>): string[];
export function setBindingValue(text: string, env: string, table: string, key: string, value: string): string;
export function writeBindingIds(configPath: string, env: string, ids: { d1?: string; kv?: string }): void;
export function parseD1List(out: string): Map<string, string>;
export function parseKvList(out: string): Map<string, string>;
export function parseR2List(out: string): Set<string>;
export function parseQueuesList(out: string): Set<string>;
export function listSecrets(run: WranglerRun, env: string, configPath?: string): Promise<Set<string>>;
export function promptHidden(question: string): Promise<string>;
