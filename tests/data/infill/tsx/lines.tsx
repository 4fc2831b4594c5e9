export function Title({ text }: { text: string }) {<CURSOR>
  return <h1>{text}</h1>;
}
