package ctxend

import "testing"

func TestState_FuncsEmptiedWhenAllStopped(t *testing.T) {
	var s State
	for range 1000 {
		stop := s.AfterFunc(func() {})
		stop()
	}
	if len(s.funcs) > 1 {
		t.Fatalf("%d registrations kept after every one was stopped", len(s.funcs))
	}
}
