export function clamp(value: number, lo: number, hi: number): number {<CURSOR>
  return Math.min(Math.max(value, lo), hi);
}
