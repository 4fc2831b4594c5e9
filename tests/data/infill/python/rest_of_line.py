def normalize(values):
    peak = max(abs(v) for v in values)
    return [round(v / peak, 3) for v in <CURSOR>]
