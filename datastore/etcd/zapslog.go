package etcd

import (
	"context"
	"log/slog"
	"sort"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// slogCore is a zapcore.Core that writes to a slog.Logger, so the embedded
// etcd server's logs go where the rest of Tabby's logs go, with their fields
// as attributes. zap has no such bridge in this direction.
type slogCore struct {
	log   *slog.Logger
	level zapcore.LevelEnabler
	// closing demotes every entry to debug: while stopping, etcd reports
	// each listener it closes as a serving error.
	closing *atomic.Bool
}

func newZapLogger(log *slog.Logger, level zapcore.Level, closing *atomic.Bool) *zap.Logger {
	return zap.New(&slogCore{log: log, level: level, closing: closing})
}

// benign are etcd error messages that are not errors for a single embedded
// member: etcd 3.7 tries to record its storage version before the first raft
// term is persisted, fails, and succeeds on its next periodic try.
var benign = map[string]bool{
	"failed to update storage version": true,
}

func (c *slogCore) effective(e zapcore.Entry) zapcore.Level {
	if (c.closing.Load() || benign[e.Message]) && e.Level > zapcore.DebugLevel {
		return zapcore.DebugLevel
	}
	return e.Level
}

// Enabled is the level gate zap asks before building an entry; the message
// is not known yet, so benign messages are filtered in Check.
func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.level.Enabled(c.effective(zapcore.Entry{Level: l}))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log.With(attrs(fields)...), level: c.level, closing: c.closing}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.level.Enabled(c.effective(e)) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	c.log.Log(context.Background(), slogLevel(c.effective(e)), e.Message, attrs(fields)...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// attrs renders zap fields through zap's own map encoder, which knows every
// field type, and sorts them so log lines are stable.
func attrs(fields []zapcore.Field) []any {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, slog.Any(k, enc.Fields[k]))
	}
	return out
}
