function sum(values) {
  let total = 0;
<CURSOR>
  return total;
}
