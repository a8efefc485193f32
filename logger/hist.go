package logger

import (
	"cmp"
	"errors"
	"math/bits"
	"slices"
	"strconv"
	"time"
)

// The rollups' latency histogram is log-linear: durations in microseconds
// below 32 are counted exactly, and each power of two above is cut into 32
// equal buckets. A bucket is named by its middle value, so every duration it
// holds is within 1/64 (1.6%) of its name, and so is any percentile read
// from it against the exact one.
const histSub = 32

// histBucket returns the name of the bucket that holds us microseconds.
func histBucket(us int64) int64 {
	if us < histSub {
		return max(us, 0)
	}
	shift := bits.Len64(uint64(us)) - 6 // us>>shift is in [32, 64)
	width := int64(1) << shift
	lo := us >> shift << shift
	return lo + (width-1)/2
}

// hist is a sparse histogram: buckets in ascending order of their names,
// each with its count.
type hist []histBin

type histBin struct{ us, n int64 }

// errHistFormat reports a stored histogram that cannot be read.
var errHistFormat = errors.New("histogram is not a JSON object of bucket → count")

// add counts n durations of bucket us (a name from histBucket).
func (h *hist) add(us, n int64) {
	i, found := slices.BinarySearchFunc(*h, us, func(b histBin, us int64) int { return cmp.Compare(b.us, us) })
	if found {
		(*h)[i].n += n
		return
	}
	*h = slices.Insert(*h, i, histBin{us, n})
}

// merge adds o into h.
func (h *hist) merge(o hist) {
	if len(o) == 0 {
		return
	}
	if len(*h) == 0 {
		*h = append((*h)[:0], o...)
		return
	}
	out := make(hist, 0, len(*h)+len(o))
	a, b := *h, o
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0].us < b[0].us:
			out, a = append(out, a[0]), a[1:]
		case a[0].us > b[0].us:
			out, b = append(out, b[0]), b[1:]
		default:
			out = append(out, histBin{a[0].us, a[0].n + b[0].n})
			a, b = a[1:], b[1:]
		}
	}
	*h = append(append(out, a...), b...)
}

// total returns the number of durations counted.
func (h hist) total() int64 {
	var n int64
	for _, b := range h {
		n += b.n
	}
	return n
}

// quantile returns the duration of nearest rank ceil(q*total) (q in (0, 1]),
// zero for an empty histogram.
func (h hist) quantile(q float64) time.Duration {
	n := h.total()
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n) + 0.999999)
	rank = min(max(rank, 1), n)
	var seen int64
	for _, b := range h {
		seen += b.n
		if seen >= rank {
			return time.Duration(b.us) * time.Microsecond
		}
	}
	return time.Duration(h[len(h)-1].us) * time.Microsecond
}

// appendJSON appends h as the JSON object stored in rollups.hist, such as
// {"12":3,"1520":1}: each bucket's middle value in microseconds, as a key,
// with its count. sqlite3's json_each reads it.
func (h hist) appendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, bin := range h {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, bin.us, 10)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, bin.n, 10)
	}
	return append(b, '}')
}

// parseHist reads what appendJSON wrote into h (reusing its space). Anything
// else, buckets out of order, or counts below 1 are errHistFormat.
func parseHist(h hist, s []byte) (hist, error) {
	h = h[:0]
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return h, errHistFormat
	}
	s = s[1 : len(s)-1]
	num := func() (int64, bool) {
		var v int64
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' && i < 18 {
			v = v*10 + int64(s[i]-'0')
			i++
		}
		ok := i > 0 && (i == len(s) || s[i] < '0' || s[i] > '9') && (s[0] != '0' || i == 1) // no leading zeros, as in JSON
		s = s[i:]
		return v, ok
	}
	expect := func(c byte) bool {
		if len(s) == 0 || s[0] != c {
			return false
		}
		s = s[1:]
		return true
	}
	prev := int64(-1)
	for len(s) > 0 {
		if len(h) > 0 && !expect(',') {
			return h, errHistFormat
		}
		if !expect('"') {
			return h, errHistFormat
		}
		us, ok := num()
		if !ok || !expect('"') || !expect(':') {
			return h, errHistFormat
		}
		n, ok := num()
		if !ok || n < 1 || us <= prev {
			return h, errHistFormat
		}
		h = append(h, histBin{us, n})
		prev = us
	}
	return h, nil
}

// histSlots is the number of buckets of a histogram of int64 durations.
const histSlots = 64 * histSub

// histIndex returns the position of the bucket named us among all buckets.
func histIndex(us int64) int {
	if us < histSub {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - 6
	return histSub*shift + int(us>>shift)
}

// histAcc adds up histograms without allocating: a count per bucket.
type histAcc struct {
	n     [histSlots]int64
	total int64
}

func (a *histAcc) add(h hist) {
	for _, b := range h {
		a.n[histIndex(b.us)] += b.n
		a.total += b.n
	}
}

// quantile is hist.quantile over the sum.
func (a *histAcc) quantile(q float64) time.Duration {
	if a == nil || a.total == 0 {
		return 0
	}
	rank := min(max(int64(q*float64(a.total)+0.999999), 1), a.total)
	var seen int64
	for i, n := range a.n {
		seen += n
		if seen >= rank {
			return time.Duration(histName(i)) * time.Microsecond
		}
	}
	return 0
}

// histName is the inverse of histIndex: the name of bucket i.
func histName(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	lo := int64(histSub+i%histSub) << shift
	return lo + (int64(1)<<shift-1)/2
}
