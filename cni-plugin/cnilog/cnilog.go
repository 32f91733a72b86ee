package cnilog

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Options are the logging keys of a netconf.
type Options struct {
	Level        string // slog's spelling: debug, info, warn, error
	FilePath     string // empty: stderr only
	FileMaxSize  int    // MB; 0 means Calico's 100
	FileMaxAge   int    // days; 0 means Calico's 30
	FileMaxCount int    // 0 means Calico's 10
}

// New returns a logger writing to stderr and, when opts.FilePath is set, to
// that file as well. The closer flushes and closes the file. A file that
// cannot be opened is not fatal for the plugin (a pod should not fail to
// start because a log directory is read-only): the logger then writes to
// stderr only and says so.
func New(stderr io.Writer, plugin string, opts Options) (*slog.Logger, io.Closer) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.Level)); err != nil {
		level = slog.LevelInfo
	}
	hopts := &slog.HandlerOptions{Level: level}
	handlers := []slog.Handler{slog.NewTextHandler(stderr, hopts)}
	var closer io.Closer = nopCloser{}
	var fileErr error
	if opts.FilePath != "" {
		if err := os.MkdirAll(filepath.Dir(opts.FilePath), 0o755); err != nil {
			fileErr = err
		} else {
			lj := &lumberjack.Logger{
				Filename:   opts.FilePath,
				MaxSize:    orDefault(opts.FileMaxSize, 100),
				MaxAge:     orDefault(opts.FileMaxAge, 30),
				MaxBackups: orDefault(opts.FileMaxCount, 10),
			}
			handlers = append(handlers, slog.NewTextHandler(lj, hopts))
			closer = lj
		}
	}
	log := slog.New(slog.NewMultiHandler(handlers...)).With("plugin", plugin)
	if fileErr != nil {
		log.Warn("cannot log to file, logging to stderr only", "file", opts.FilePath, "err", fileErr)
	}
	return log, closer
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
