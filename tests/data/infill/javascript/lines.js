function parseRow(line) {<CURSOR>
  const fields = line.split(",");
  return { name: fields[0], size: Number(fields[1]) };
}
