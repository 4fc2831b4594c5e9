export function Counter() {
  const [count, setCount] = React.useState(0);
<CURSOR>
  return <button onClick={increment}>{count}</button>;
}
