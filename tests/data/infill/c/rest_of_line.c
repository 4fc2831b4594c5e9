#include <stdio.h>

int main(void) {
    printf("%d\n", <CURSOR>);
    return 0;
}
