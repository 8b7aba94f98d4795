// Package text holds small string helpers the packages share.
package text

import "strings"

// OneLine collapses every run of white space in s, newlines included, into
// one space: messages from parsers become one line of a log or a response.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Nearest returns the candidate at most maxEdits edits from name, case
// aside (the closest), or "" when name is one of them or none is that
// close: the "did you mean" of an unknown name.
func Nearest(name string, candidates []string, maxEdits int) string {
	best, bestD := "", maxEdits+1
	for _, c := range candidates {
		if c == name {
			return ""
		}
		if d := EditDistance(strings.ToLower(name), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// EditDistance is the Levenshtein distance of a and b, in characters (a
// dash of another script, ‐ for -, is one edit, not three bytes).
func EditDistance(as, bs string) int {
	a, b := []rune(as), []rune(bs)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
