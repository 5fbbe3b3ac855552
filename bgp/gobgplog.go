package bgp

import (
	"errors"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/sirupsen/logrus"
)

// gobgpLogger sends GoBGP's logs to the plugin's logrus entry.
type gobgpLogger struct {
	log    *logrus.Entry
	failed func(err error, msg string, fields logrus.Fields)
}

var _ gobgplog.Logger = (*gobgpLogger)(nil)

func (l *gobgpLogger) entry(fields gobgplog.Fields) *logrus.Entry {
	return l.log.WithField("part", "gobgp").WithFields(logrus.Fields(fields))
}

// Panic keeps GoBGP's contract: it does not return.
func (l *gobgpLogger) Panic(msg string, fields gobgplog.Fields) { l.entry(fields).Panic(msg) }

// Fatal does NOT end the process: the plugin must keep serving Docker when
// BGP fails (GoBGP calls it when its gRPC listener fails). The error is
// logged and kept for Status instead.
func (l *gobgpLogger) Fatal(msg string, fields gobgplog.Fields) {
	l.failed(errors.New("gobgp: "+msg), "BGP speaker failed", logrus.Fields(fields))
}

func (l *gobgpLogger) Error(msg string, fields gobgplog.Fields) { l.entry(fields).Error(msg) }
func (l *gobgpLogger) Warn(msg string, fields gobgplog.Fields)  { l.entry(fields).Warn(msg) }
func (l *gobgpLogger) Info(msg string, fields gobgplog.Fields)  { l.entry(fields).Info(msg) }
func (l *gobgpLogger) Debug(msg string, fields gobgplog.Fields) { l.entry(fields).Debug(msg) }

// SetLevel is ignored: the plugin's logrus logger owns the level.
func (l *gobgpLogger) SetLevel(gobgplog.LogLevel) {}

func (l *gobgpLogger) GetLevel() gobgplog.LogLevel {
	return gobgplog.LogLevel(l.log.Logger.GetLevel())
}
