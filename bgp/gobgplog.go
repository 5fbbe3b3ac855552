package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

// slogBridge sends GoBGP's log/slog records to the plugin's logrus entry,
// under the plugin's field names, so one filter finds a session's up and
// down lines and ours: GoBGP's "Key" and "Peer" become "peer", "Prefix"
// becomes "prefix", "Error" and "Err" become logrus' "error", and its other
// keys are lower-cased ("Topic" -> "topic", "Reason" -> "reason").
//
// GoBGP's error lines are also kept for Status (failed): that is how it
// reports a gRPC or BFD listener it could not open, or a peer it could not
// add. The plugin's logrus logger owns the level.
type slogBridge struct {
	log    *logrus.Entry
	failed func(err error, msg string, fields logrus.Fields)
	// stopping is set once the speaker is stopping GoBGP: its Stop then
	// logs the failure of a StopBgp the speaker already made, which is no
	// error of ours.
	stopping atomic.Bool
}

// logger is GoBGP's logger (server.LoggerOption).
func (b *slogBridge) logger() *slog.Logger { return slog.New(&slogHandler{bridge: b}) }

// fieldNames renames GoBGP's keys; the others are lower-cased.
var fieldNames = map[string]string{
	"Key":    "peer",
	"Peer":   "peer",
	"Prefix": "prefix",
	"Error":  logrus.ErrorKey,
	"Err":    logrus.ErrorKey,
}

// slogHandler is one logger derived from the bridge: the attributes and
// group of slog's With and WithGroup.
type slogHandler struct {
	bridge *slogBridge
	fields logrus.Fields
	group  string // "" or "name." for the keys that follow
}

var _ slog.Handler = (*slogHandler)(nil)

func (h *slogHandler) Enabled(_ context.Context, level slog.Level) bool {
	return h.bridge.log.Logger.IsLevelEnabled(logrusLevel(level))
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make(logrus.Fields, len(h.fields)+r.NumAttrs())
	maps.Copy(fields, h.fields)
	r.Attrs(func(a slog.Attr) bool {
		addAttr(fields, h.group, a)
		return true
	})
	level := logrusLevel(r.Level)
	switch {
	case level > logrus.ErrorLevel:
		h.bridge.log.WithFields(fields).Log(level, r.Message)
	case h.bridge.stopping.Load():
		h.bridge.log.WithFields(fields).Debug(r.Message)
	default:
		err := errors.New(r.Message)
		if cause, ok := fields[logrus.ErrorKey]; ok {
			err = fmt.Errorf("%s: %v", r.Message, cause)
			delete(fields, logrus.ErrorKey)
		}
		h.bridge.failed(err, "GoBGP error", fields)
	}
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := &slogHandler{bridge: h.bridge, fields: maps.Clone(h.fields), group: h.group}
	if out.fields == nil {
		out.fields = make(logrus.Fields, len(attrs))
	}
	for _, a := range attrs {
		addAttr(out.fields, h.group, a)
	}
	return out
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &slogHandler{bridge: h.bridge, fields: h.fields, group: h.group + name + "."}
}

// addAttr stores a under the plugin's name for its key; a group's
// attributes go under "group.key".
func addAttr(fields logrus.Fields, group string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		prefix := group
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, ga := range v.Group() {
			addAttr(fields, prefix, ga)
		}
		return
	}
	key, ok := fieldNames[a.Key]
	if !ok || group != "" {
		key = group + strings.ToLower(a.Key)
	}
	fields[key] = v.Any()
}

// logrusLevel maps slog's levels (Debug -4, Info 0, Warn 4, Error 8, and
// anything between) onto logrus'.
func logrusLevel(l slog.Level) logrus.Level {
	switch {
	case l < slog.LevelInfo:
		return logrus.DebugLevel
	case l < slog.LevelWarn:
		return logrus.InfoLevel
	case l < slog.LevelError:
		return logrus.WarnLevel
	}
	return logrus.ErrorLevel
}
