class Util {
    /** Returns the sum of <CURSOR> */
    static int sum(int a, int b) { return a + b; }
}
