#include <stddef.h>
#include <string.h>

struct buffer {
    char *data;
    size_t len;
};

static int is_space(char c) { return c == ' ' || c == '\t'; }

size_t count_spaces(const struct buffer *buf)
{
    <CURSOR>
}
