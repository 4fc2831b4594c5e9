int main() {
    std::vector<int> xs = {3, 1, 2};
<CURSOR>
    return xs.front();
}
