package util

// Clamp limits v to <CURSOR>
func Clamp(v, lo, hi int) int { return v }
