fn parse(line: &str) -> Option<(String, u32)> {<CURSOR>
    let mut parts = line.split(',');
    let name = parts.next()?.to_string();
    Some((name, parts.next()?.parse().ok()?))
}
