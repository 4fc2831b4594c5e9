/* Frees the buffer and <CURSOR> */
void buffer_free(struct buffer *b);
