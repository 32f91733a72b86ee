package etcd

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestZapToSlog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	closing := new(atomic.Bool)
	z := newZapLogger(log, zapcore.ErrorLevel, closing).With(zap.String("member", "m1"))

	z.Info("chatty")
	z.Error("disk full", zap.Int("free", 0), zap.Strings("dirs", []string{"a", "b"}))
	z.Error("failed to update storage version")
	closing.Store(true)
	z.Error("listener closed")

	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want only the real error:\n%s", len(lines), out)
	}
	for _, want := range []string{"level=ERROR", `msg="disk full"`, "member=m1", "free=0", `dirs="[a b]"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %q", lines[0], want)
		}
	}

	buf.Reset()
	closing.Store(false)
	dz := newZapLogger(log, zapcore.DebugLevel, closing)
	dz.Debug("detail")
	dz.Error("failed to update storage version")
	if out := buf.String(); !strings.Contains(out, "level=DEBUG msg=detail") || !strings.Contains(out, `level=DEBUG msg="failed to update storage version"`) {
		t.Errorf("debug logger output:\n%s", out)
	}
}
