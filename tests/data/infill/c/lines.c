int clamp(int v, int lo, int hi) {<CURSOR>
    if (v < lo) return lo;
    return v;
}
