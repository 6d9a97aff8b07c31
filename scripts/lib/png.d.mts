export function encodePng(side: number, pixel: (x: number, y: number) => ArrayLike<number>): Buffer;
export function badgePng(side: number, bg: [number, number, number], fg: [number, number, number]): Buffer;
