#include <stdio.h>

/* Line numbers matter: tests/e2e/test_native.py expects them. */
static int __attribute__((noinline)) divide(int a, int b) {
    return a / b;
}

int __attribute__((noinline)) compute(int x) {
    int r = divide(x, x - 3);
    return r + 1;
}

int main(int argc, char **argv) {
    printf("%d\n", compute(argc + 2));
    return 0;
}
