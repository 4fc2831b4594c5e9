def greet(name):
    return f"Hello, {name}! Welcome to <CURSOR>"
