def mean(xs):
    # average of the values, <CURSOR>
    return sum(xs) / len(xs)
