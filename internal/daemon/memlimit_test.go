package daemon

import "testing"

func TestAutoLimit(t *testing.T) {
	for live, want := range map[uint64]int64{
		0:         40 << 20,
		16 << 20:  40 << 20,
		100 << 20: 141 << 20,
		1 << 30:   (1<<30)*5/4 + 16<<20,
	} {
		if got := autoLimit(live); got != want {
			t.Errorf("autoLimit(%d) = %d, want %d", live, got, want)
		}
	}
	if autoLimit(1<<63) <= 0 {
		t.Error("autoLimit overflows")
	}
}
