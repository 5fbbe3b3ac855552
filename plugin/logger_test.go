package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestLogLevelsSplit: errors go to standard error, everything else to
// standard output, which is what decides the level dockerd gives a managed
// plugin's line in its own log.
func TestLogLevelsSplit(t *testing.T) {
	for _, tc := range []struct {
		level      logrus.Level
		toErrorOut bool
	}{
		{logrus.DebugLevel, false},
		{logrus.InfoLevel, false},
		{logrus.WarnLevel, false},
		{logrus.ErrorLevel, true},
	} {
		t.Run(tc.level.String(), func(t *testing.T) {
			var lines, errs bytes.Buffer
			log := newLogger(config{logLevel: "debug"}, logOutput{lines: &lines, errors: &errs})
			log.WithField("endpoint", "e1").Log(tc.level, "endpoint announced")
			got, other := &lines, &errs
			if tc.toErrorOut {
				got, other = &errs, &lines
			}
			if n := strings.Count(got.String(), "\n"); n != 1 || !strings.Contains(got.String(), "level="+tc.level.String()) ||
				!strings.Contains(got.String(), "endpoint=e1") || !strings.Contains(got.String(), "component=plugin") {
				t.Errorf("want one %s line with its fields, got %d lines: %q", tc.level, n, got.String())
			}
			if other.Len() != 0 {
				t.Errorf("the other output got %q", other.String())
			}
		})
	}
}
