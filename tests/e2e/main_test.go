package e2e

import (
	"os"
	"testing"

	"github.com/tabbynet/tabby/tests/e2e/cnilab"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cnilab.Cleanup()
	os.Exit(code)
}
