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

// entry names GoBGP's peer field "peer", as the rest of the plugin's log
// lines do, so one filter finds a session's up/down lines and ours.
func (l *gobgpLogger) entry(fields gobgplog.Fields) *logrus.Entry {
	f := logrus.Fields(fields)
	if key, ok := f["Key"]; ok {
		f = logrus.Fields{}
		for k, v := range fields {
			f[k] = v
		}
		delete(f, "Key")
		f["peer"] = key
	}
	return l.log.WithField("part", "gobgp").WithFields(f)
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

// Info and Debug skip building an entry when the level is off: GoBGP logs
// at debug for every destination it learns.
func (l *gobgpLogger) Info(msg string, fields gobgplog.Fields) {
	if l.log.Logger.IsLevelEnabled(logrus.InfoLevel) {
		l.entry(fields).Info(msg)
	}
}

func (l *gobgpLogger) Debug(msg string, fields gobgplog.Fields) {
	if l.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		l.entry(fields).Debug(msg)
	}
}

// SetLevel is ignored: the plugin's logrus logger owns the level.
func (l *gobgpLogger) SetLevel(gobgplog.LogLevel) {}

func (l *gobgpLogger) GetLevel() gobgplog.LogLevel {
	return gobgplog.LogLevel(l.log.Logger.GetLevel())
}
