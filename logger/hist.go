package logger

import (
	"cmp"
	"errors"
	"math"
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
var errHistFormat = errors.New("histogram is not the JSON array of bucket counts, nor an object of bucket → count")

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

// appendJSON appends h as stored in rollups.hist: a JSON array whose first
// element is the index of the first bucket (histIndex), then each bucket's
// count in order, a run of empty buckets between two counts written as one
// negative number, minus its length. [3,1,-6,2] holds one duration in
// bucket 3 and two in bucket 10; an empty histogram is []. sqlite3's
// json_each reads it, and the views decode it (bucketsSQL). It is a third to
// a quarter of the size of the object of bucket names that older versions
// wrote, so a busy key's hour fits in its row's b-tree page instead of
// spilling to overflow pages.
func (h hist) appendJSON(b []byte) []byte {
	b = append(b, '[')
	prev, cur := -1, -1 // the last index written; the one being summed
	var n int64
	emit := func() {
		if prev < 0 {
			b = strconv.AppendInt(b, int64(cur), 10)
		} else if gap := cur - prev - 1; gap > 0 {
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(-gap), 10)
		}
		b = append(b, ',')
		b = strconv.AppendInt(b, n, 10)
		prev = cur
	}
	for _, bin := range h {
		if i := histIndex(bin.us); i != cur {
			if cur >= 0 {
				emit()
			}
			cur, n = i, 0
		}
		n += bin.n
	}
	if cur >= 0 {
		emit()
	}
	return append(b, ']')
}

// histTop is the highest bucket index: that of the longest duration.
var histTop = histIndex(math.MaxInt64)

// parseHist reads a stored histogram into h (reusing its space): the array
// appendJSON writes, or the object of bucket names → counts, such as
// {"12":3,"1519":1}, that versions before it wrote. Anything else is
// errHistFormat.
func parseHist(h hist, s []byte) (hist, error) {
	if len(s) > 0 && s[0] == '{' {
		return parseHistObject(h, s)
	}
	h = h[:0]
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return h, errHistFormat
	}
	s = s[1 : len(s)-1]
	if len(s) == 0 {
		return h, nil
	}
	next, skipped := -1, true // the next bucket's index; whether a count must come next
	for {
		v, n := jsonInt(s)
		if n == 0 {
			return h, errHistFormat
		}
		s = s[n:]
		switch {
		case next < 0: // the first bucket's index
			if v < 0 || v > int64(histTop) {
				return h, errHistFormat
			}
			next = int(v)
		case v > 0:
			if next > histTop {
				return h, errHistFormat
			}
			h = append(h, histBin{histName(next), v})
			next, skipped = next+1, false
		case v < 0 && !skipped && -v <= int64(histTop):
			next, skipped = next-int(v), true
		default: // a zero, a run after a run or after the start, a run past the end
			return h, errHistFormat
		}
		if len(s) == 0 {
			break
		}
		if s[0] != ',' {
			return h, errHistFormat
		}
		s = s[1:]
	}
	if skipped { // no count after the start or the last run
		return h, errHistFormat
	}
	return h, nil
}

// jsonInt reads the JSON integer s begins with, of at most 18 digits: its
// value and length, 0 when there is none.
func jsonInt(s []byte) (int64, int) {
	i, neg := 0, false
	if len(s) > 0 && s[0] == '-' {
		i, neg = 1, true
	}
	start := i
	var v int64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' && i-start < 18 {
		v = v*10 + int64(s[i]-'0')
		i++
	}
	switch {
	case i == start, i < len(s) && s[i] >= '0' && s[i] <= '9', // no digits, or too many
		s[start] == '0' && (i-start > 1 || neg): // a leading zero, or -0
		return 0, 0
	}
	if neg {
		v = -v
	}
	return v, i
}

// parseHistObject reads the object older versions wrote into h. Buckets
// out of order, counts below 1, or anything else are errHistFormat.
func parseHistObject(h hist, s []byte) (hist, error) {
	h = h[:0]
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return h, errHistFormat
	}
	s = s[1 : len(s)-1]
	num := func() (int64, bool) { // unsigned here
		if len(s) > 0 && s[0] == '-' {
			return 0, false
		}
		v, n := jsonInt(s)
		s = s[n:]
		return v, n > 0
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
