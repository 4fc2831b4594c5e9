class Util {
    static final String NAME = "inventory-<CURSOR>";
}
