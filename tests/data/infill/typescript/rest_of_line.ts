const ids: number[] = rows.filter((r) => r.active).map(<CURSOR>);
