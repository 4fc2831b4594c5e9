fn main() {
    let msg = "value: <CURSOR>";
}
