// Package logs gives every package its logger: each log line carries the
// field component, naming the package that wrote it (one value per
// package: plugin, api, ipam, driver, fib, bgp, metrics, status). A
// package sets it once, where it takes the logger it is given, so the
// value does not depend on the caller.
package logs

import "github.com/sirupsen/logrus"

// Component is the field naming the package that wrote a line.
const Component = "component"

// For is log (the standard logger when nil) with component set to name.
func For(log *logrus.Entry, name string) *logrus.Entry {
	if log == nil {
		log = logrus.NewEntry(logrus.StandardLogger())
	}
	return log.WithField(Component, name)
}
