function mean(xs: number[]): number {
  const n = xs.length;
<CURSOR>
  return total / n;
}
