package fdlimit

import "testing"

func TestRaise(t *testing.T) {
	l, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	if l.Known && (l.Soft != l.Hard || l.Soft == 0) {
		t.Fatalf("after Raise: %+v; want soft = hard > 0", l)
	}
	again, err := Raise()
	if err != nil || again.Raised || again.Soft != l.Soft {
		t.Fatalf("second Raise: %+v, %v; want nothing to do", again, err)
	}
}
