package util

func Sum(xs []int) int {<CURSOR>
	total := 0
	for _, x := range xs {
		total += x
	}
	return total
}
