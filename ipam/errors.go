package ipam

import (
	"errors"
	"fmt"
)

// Kinds of failure, for errors.Is. Every error this package returns for a bad
// request or a full pool is an *Error wrapping one of them.
var (
	ErrInvalid     = errors.New("invalid request")
	ErrUnknownPool = errors.New("unknown pool")
	ErrInUse       = errors.New("already in use")
	ErrExhausted   = errors.New("no free address")
)

// Error is a request that cannot be honoured. Docker shows its text at the
// docker CLI, so it names the flag or setting at fault, the value given, and
// why.
type Error struct {
	Kind   error  // one of the Err* kinds above
	Field  string // the docker flag or plugin setting at fault; empty when the fault is the pool's state
	Value  string
	Reason string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason)
}

func (e *Error) Unwrap() error { return e.Kind }

func invalid(field, value, format string, args ...any) error {
	return &Error{Kind: ErrInvalid, Field: field, Value: value, Reason: fmt.Sprintf(format, args...)}
}
