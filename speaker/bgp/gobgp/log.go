package gobgp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// levelTrace is the slog level of gobgp's own debug messages, which
// describe every BGP message: below slog's Debug, so that turning on debug
// logs does not turn them on.
const levelTrace = slog.LevelDebug - 4

// logger passes gobgp's log messages to slog, naming the peer of the
// server that logs them. gobgp's Info messages, chatty, become Debug ones;
// the Router logs what matters at Info itself. No field that could hold a
// password is passed on.
type logger struct {
	log  *slog.Logger
	peer atomic.Pointer[string]
}

var _ gobgplog.Logger = (*logger)(nil)

// newLogger returns a logger that writes to log.
func newLogger(log *slog.Logger) *logger {
	l := &logger{log: log}
	l.setPeer("")
	return l
}

// setPeer names the peer of the server from now on.
func (l *logger) setPeer(name string) {
	l.peer.Store(&name)
}

// write logs msg with fields at level.
func (l *logger) write(level slog.Level, msg string, fields gobgplog.Fields) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, len(fields)+2)
	attrs = append(attrs, slog.String("component", "gobgp"), slog.String("peer", *l.peer.Load()))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if strings.Contains(strings.ToLower(k), "password") || k == gobgplog.FieldFacility {
			continue
		}
		attrs = append(attrs, slog.Any(k, fields[k]))
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}

// Panic logs msg and panics: gobgp calls it on a bug of its own.
func (l *logger) Panic(msg string, fields gobgplog.Fields) {
	l.write(slog.LevelError, msg, fields)
	panic(fmt.Sprintf("gobgp: %s", msg))
}

// Fatal logs msg and panics: gobgp calls it when it cannot go on.
func (l *logger) Fatal(msg string, fields gobgplog.Fields) {
	l.write(slog.LevelError, msg, fields)
	panic(fmt.Sprintf("gobgp: %s", msg))
}

// Error logs msg at slog's Error level.
func (l *logger) Error(msg string, fields gobgplog.Fields) { l.write(slog.LevelError, msg, fields) }

// noMatchingWithdraw is the warning gobgp logs for every route a router
// sends: the import policy turns each into a withdrawal of a path the RIB
// never held.
const noMatchingWithdraw = "No matching path for withdraw found"

// Warn logs msg at slog's Warn level, or at Debug level if it is the
// expected consequence of rejecting the routers' routes.
func (l *logger) Warn(msg string, fields gobgplog.Fields) {
	if strings.HasPrefix(msg, noMatchingWithdraw) {
		l.write(slog.LevelDebug, msg, fields)
		return
	}
	l.write(slog.LevelWarn, msg, fields)
}

// Info logs msg at slog's Debug level.
func (l *logger) Info(msg string, fields gobgplog.Fields) { l.write(slog.LevelDebug, msg, fields) }

// Debug logs msg below slog's Debug level.
func (l *logger) Debug(msg string, fields gobgplog.Fields) { l.write(levelTrace, msg, fields) }

// SetLevel does nothing: the slog handler decides.
func (l *logger) SetLevel(gobgplog.LogLevel) {}

// GetLevel returns the gobgp level that matches what the slog handler
// lets through, so that gobgp skips building messages nobody reads.
func (l *logger) GetLevel() gobgplog.LogLevel {
	ctx := context.Background()
	switch {
	case l.log.Enabled(ctx, levelTrace):
		return gobgplog.DebugLevel
	case l.log.Enabled(ctx, slog.LevelDebug):
		return gobgplog.InfoLevel
	case l.log.Enabled(ctx, slog.LevelWarn):
		return gobgplog.WarnLevel
	}
	return gobgplog.ErrorLevel
}
