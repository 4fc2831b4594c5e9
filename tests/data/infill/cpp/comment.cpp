int main() {
    // TODO: parse the <CURSOR>
    return 0;
}
