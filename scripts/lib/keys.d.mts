export function generateSigningJwk(): Promise<{ kty: string; crv: string; x: string; d: string; kid: string; alg: string; use: string }>;
export function randomSecret(bytes?: number): string;
export function readDevVars(path: string): Record<string, string>;
export function writeDevVars(path: string, vars: Record<string, string>): void;
export function readKeySet(file: string): { vars: Record<string, string>; keys: { kid: string }[] };
export function writeKeySet(file: string, keys: object[], set?: Record<string, string>): void;
export function isDevelopmentSet(file: string): boolean;
export function keySetEnvironment(file: string, vars: Record<string, string>): string | undefined;
export const SIGNING_DELAY_SECONDS: number;
