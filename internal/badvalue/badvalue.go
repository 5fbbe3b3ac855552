// Package badvalue holds the one error for a value the user gave and the
// plugin refuses: an option of `docker network create` or `docker run`, a
// plugin setting, a BGP setting or key of the BGP file. Its text is what the
// user sees, so it names the setting, the value and the reason.
package badvalue

import "fmt"

// Error is a refused value: `Kind Name="Value": Reason`.
type Error struct {
	// Kind is what stands before the name: "setting" for the plugin's
	// settings, "ipvlan-bgp: option" for Docker's options (the docker
	// CLI shows it after its own words), "" for the BGP settings and
	// file keys, whose names say what they are.
	Kind   string
	Name   string
	Value  string
	Reason string
}

func (e *Error) Error() string {
	text := fmt.Sprintf("%s=%q: %s", e.Name, e.Value, e.Reason)
	if e.Kind != "" {
		return e.Kind + " " + text
	}
	return text
}

// Errorf is an Error whose reason is format with args.
func Errorf(kind, name, value, format string, args ...any) *Error {
	return &Error{Kind: kind, Name: name, Value: value, Reason: fmt.Sprintf(format, args...)}
}
