class Greeter {
    void greet(String name) {
        String msg = "Hello, " + name;
<CURSOR>
    }
}
