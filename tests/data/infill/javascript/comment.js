// Returns the largest <CURSOR>
function max(a, b) {
  return a > b ? a : b;
}
