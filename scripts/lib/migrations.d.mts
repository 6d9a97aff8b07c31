export function migrationBatches(dir: string): string[][];
