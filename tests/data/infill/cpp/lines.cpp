template <typename T>
T largest(const std::vector<T> &xs) {<CURSOR>
    T best = xs.front();
    for (const T &x : xs) best = std::max(best, x);
    return best;
}
