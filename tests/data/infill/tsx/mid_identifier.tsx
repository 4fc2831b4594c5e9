const total = coun<CURSOR>ter + 1;
