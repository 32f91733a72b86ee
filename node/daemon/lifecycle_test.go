package daemon

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

type recCell struct {
	name    string
	failOn  string // "start" or "stop"
	journal *[]string
}

func (c *recCell) Name() string { return c.name }

func (c *recCell) Start(context.Context) error {
	*c.journal = append(*c.journal, "start "+c.name)
	if c.failOn == "start" {
		return errors.New("boom")
	}
	return nil
}

func (c *recCell) Stop(context.Context) error {
	*c.journal = append(*c.journal, "stop "+c.name)
	if c.failOn == "stop" {
		return errors.New("stuck")
	}
	return nil
}

func TestLifecycleOrder(t *testing.T) {
	var j []string
	l := lifecycle{log: slog.New(slog.DiscardHandler)}
	for _, n := range []string{"a", "b", "c"} {
		l.append(&recCell{name: n, journal: &j})
	}
	if err := l.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(j, ","); got != "start a,start b,start c,stop c,stop b,stop a" {
		t.Errorf("order %s", got)
	}
}

// A part that fails to start stops the parts before it, last first, and a
// part that fails to stop does not keep the others running.
func TestLifecycleFailures(t *testing.T) {
	var j []string
	l := lifecycle{log: slog.New(slog.DiscardHandler)}
	l.append(&recCell{name: "a", journal: &j})
	l.append(&recCell{name: "b", journal: &j, failOn: "stop"})
	l.append(&recCell{name: "c", journal: &j, failOn: "start"})
	l.append(&recCell{name: "d", journal: &j})
	err := l.start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start c: boom") || !strings.Contains(err.Error(), "stop b: stuck") {
		t.Fatalf("start error %v", err)
	}
	if got := strings.Join(j, ","); got != "start a,start b,start c,stop b,stop a" {
		t.Errorf("order %s", got)
	}
}
