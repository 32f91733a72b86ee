package ipamcmd

import (
	"fmt"
	"io"
	"regexp"
	"strings"
)

// numeric matches the cells that Calico's table writer right-aligns.
var numeric = regexp.MustCompile(`^-?\d+\.?\d*$`)

// writeTable renders rows the way Calico's calicoctl does (olekukonko's
// tablewriter defaults): a boxed ASCII table, centred upper-case headers,
// numbers right-aligned and everything else left-aligned.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	var b strings.Builder
	sep := func() {
		b.WriteString("+")
		for _, wd := range widths {
			b.WriteString(strings.Repeat("-", wd+2))
			b.WriteString("+")
		}
		b.WriteString("\n")
	}
	sep()
	b.WriteString("|")
	for i, h := range header {
		gap := widths[i] - len(h)
		fmt.Fprintf(&b, " %s%s%s |", strings.Repeat(" ", gap/2), strings.ToUpper(h), strings.Repeat(" ", gap-gap/2))
	}
	b.WriteString("\n")
	sep()
	for _, r := range rows {
		b.WriteString("|")
		for i, c := range r {
			if numeric.MatchString(c) {
				fmt.Fprintf(&b, " %*s |", widths[i], c)
			} else {
				fmt.Fprintf(&b, " %-*s |", widths[i], c)
			}
		}
		b.WriteString("\n")
	}
	sep()
	_, err := io.WriteString(w, b.String())
	return err
}
