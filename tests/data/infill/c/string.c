const char *name = "buffer-<CURSOR>";
