package api

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

type observed struct {
	call string
	err  error
}

type recordingObserver struct {
	mu    sync.Mutex
	calls []observed
}

func (o *recordingObserver) Observe(call string, took time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took < 0 {
		panic("negative call duration")
	}
	o.calls = append(o.calls, observed{call, err})
}

func TestObserverHearsEveryCall(t *testing.T) {
	s, rec := newTestServer(t)
	obs := &recordingObserver{}
	s.SetObserver(obs)
	s.Ready(rec, rec)
	call(t, s, "/NetworkDriver.CreateNetwork", `{"NetworkID":"n1"}`)
	rec.fail = errors.New("refused")
	call(t, s, "/IpamDriver.RequestAddress", `{"PoolID":"p"}`)
	call(t, s, "/NetworkDriver.Join", `{"NetworkID":`)

	want := []struct {
		call    string
		failed  bool
		errText string
	}{
		{"NetworkDriver.CreateNetwork", false, ""},
		{"IpamDriver.RequestAddress", true, "refused"},
		{"NetworkDriver.Join", true, "malformed request"},
	}
	if len(obs.calls) != len(want) {
		t.Fatalf("observed %v, want %d calls", obs.calls, len(want))
	}
	for i, w := range want {
		got := obs.calls[i]
		if got.call != w.call || (got.err != nil) != w.failed {
			t.Errorf("call %d observed as %s (err %v), want %s failed=%v", i, got.call, got.err, w.call, w.failed)
		}
		if w.failed && !containsText(got.err, w.errText) {
			t.Errorf("call %s: error %v, want it to say %q", got.call, got.err, w.errText)
		}
	}
}

func containsText(err error, text string) bool {
	return err != nil && strings.Contains(err.Error(), text)
}
