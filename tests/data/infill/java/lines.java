class Temp {
    static double toFahrenheit(double c) {<CURSOR>
        return c * 9 / 5 + 32;
    }
}
