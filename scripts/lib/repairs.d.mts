export const REPAIR_MARGIN_MS: number;
export function repairSql(sinceMs: number): string;
