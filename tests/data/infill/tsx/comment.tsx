export function Empty() {
  // nothing to show <CURSOR>
  return null;
}
