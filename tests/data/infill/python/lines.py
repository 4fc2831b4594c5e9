def parse_header(line: str) -> dict:<CURSOR>
    fields = line.split(",")
    return {"name": fields[0], "size": int(fields[1])}
