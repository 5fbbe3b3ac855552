package api

import "time"

// Observer hears about every Docker call once it is answered: its name
// ("NetworkDriver.Join"), how long it took and the error it answered with,
// if any. The metrics package implements it; api itself stays free of any
// metrics library.
type Observer interface {
	Observe(call string, took time.Duration, err error)
}

// SetObserver installs o. Call it before Serve: the observer is read by
// every call without a lock.
func (s *Server) SetObserver(o Observer) { s.observer = o }

// observe reports one answered call to the observer, if there is one.
func (s *Server) observe(call string, took time.Duration, err error) {
	if s.observer != nil {
		s.observer.Observe(call, took, err)
	}
}
