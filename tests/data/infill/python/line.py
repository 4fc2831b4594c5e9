def total_size(items):
    total = 0
<CURSOR>
    return total
