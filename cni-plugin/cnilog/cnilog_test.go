package cnilog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLevelsAndFile(t *testing.T) {
	var stderr bytes.Buffer
	file := filepath.Join(t.TempDir(), "cni", "cni.log")
	log, closer := New(&stderr, "calico", Options{Level: "warn", FilePath: file})
	log.Info("hidden")
	log.Warn("shown", "pod", "a")
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("log file: %v", err)
	}
	for name, out := range map[string]string{"stderr": stderr.String(), "file": string(b)} {
		if strings.Contains(out, "hidden") || !strings.Contains(out, "msg=shown") || !strings.Contains(out, "plugin=calico") {
			t.Errorf("%s got %q", name, out)
		}
	}
}

func TestUnwritableFileFallsBackToStderr(t *testing.T) {
	var stderr bytes.Buffer
	dir := t.TempDir()
	blocker := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	log, closer := New(&stderr, "calico", Options{FilePath: filepath.Join(blocker, "cni.log")})
	defer closer.Close()
	log.Info("still logged")
	if !strings.Contains(stderr.String(), "cannot log to file") || !strings.Contains(stderr.String(), "still logged") {
		t.Errorf("stderr %q", stderr.String())
	}
}
