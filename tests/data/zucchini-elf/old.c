typedef int (*op_fn)(int, int);

static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
static int mul(int a, int b) { return a * b; }

const char *const names[] = {"add", "sub", "mul"};
op_fn ops[] = {add, sub, mul};
int counter;

__attribute__((noinline)) int apply(int i, int a, int b) {
    counter++;
    if (i < 0 || i > 2)
        return -1;
    return ops[i](a, b) + names[i][0];
}

int entry(void) {
    int s = 0;
    for (int i = 0; i < 3; i++)
        s += apply(i, s, 7);
    return s;
}
