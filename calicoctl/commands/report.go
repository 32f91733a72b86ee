package commands

import (
	"fmt"
	"io"
	"strings"
)

// action is a resource-changing command, for messages.
type action struct {
	verb string // "create"
	past string // "created"
}

var (
	actCreate  = action{"create", "created"}
	actApply   = action{"apply", "applied"}
	actReplace = action{"replace", "replaced"}
	actDelete  = action{"delete", "deleted"}
)

// singleKind returns the kind all documents share, or "" when they differ.
func singleKind(docs []document) string {
	kind := ""
	for i, d := range docs {
		k := kindOf(d.Res)
		if i == 0 {
			kind = k
		} else if k != kind {
			return ""
		}
	}
	return kind
}

// succeeded prints Calico's success line: `Successfully created 2 'IPPool' resource(s)`.
func succeeded(w io.Writer, act action, kind string, n int) {
	if kind != "" {
		fmt.Fprintf(w, "Successfully %s %d '%s' resource(s)\n", act.past, n, kind)
		return
	}
	fmt.Fprintf(w, "Successfully %s %d resource(s)\n", act.past, n)
}

// nothingWritten is the error for a command refused before any write:
// Calico's `failed to create any 'IPPool' resources: ...` with every problem
// on its own line, each naming its file and document.
func nothingWritten(act action, kind string, total int, problems []string) error {
	if total == 1 && len(problems) == 1 {
		if kind != "" {
			return fmt.Errorf("failed to %s '%s' resource: %s", act.verb, kind, problems[0])
		}
		return fmt.Errorf("failed to %s resource: %s", act.verb, problems[0])
	}
	what := "resources"
	if kind != "" {
		what = "'" + kind + "' resources"
	}
	return fmt.Errorf("failed to %s any %s: %d problem(s), nothing was written:\n  %s",
		act.verb, what, len(problems), strings.Join(problems, "\n  "))
}

// stoppedHalfway reports a write that failed after done of the documents were
// written: Calico's `Partial success: created the first 1 out of 3 resources:`
// on stdout with the written documents, and an error with the cause and the
// documents that were not written.
func stoppedHalfway(w io.Writer, act action, kind string, done, notDone []string, cause error) error {
	total := len(done) + len(notDone)
	if len(done) == 0 {
		return nothingWritten(act, kind, total, []string{cause.Error()})
	}
	what := "resources"
	if kind != "" {
		what = "'" + kind + "' resources"
	}
	fmt.Fprintf(w, "Partial success: %s the first %d out of %d %s:\n", act.past, len(done), total, what)
	for _, d := range done {
		fmt.Fprintf(w, "  %s\n", d)
	}
	return fmt.Errorf("hit error: %w\nnot %s (%d):\n  %s", cause, act.past, len(notDone), strings.Join(notDone, "\n  "))
}
