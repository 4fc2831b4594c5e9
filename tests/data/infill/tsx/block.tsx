import React from "react";

type Props = { items: string[] };

export function List({ items }: Props) {
  <CURSOR>
}
