def area(width, height):
    return wid<CURSOR>th * height
