package cnierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestCodes(t *testing.T) {
	for _, tc := range []struct {
		err  *types.Error
		code uint
	}{
		{Config("x"), 7}, {Env("x"), 4}, {NetNS("x"), 8}, {TryAgain("x"), 11}, {NotAvailable("x"), 50}, {Internal("x"), 999},
	} {
		if tc.err.Code != tc.code {
			t.Errorf("%q: code %d, want %d", tc.err.Msg, tc.err.Code, tc.code)
		}
		b, _ := json.Marshal(tc.err)
		if want := fmt.Sprintf(`{"code":%d,"msg":"x"}`, tc.code); string(b) != want {
			t.Errorf("JSON %s, want %s", b, want)
		}
	}
}

func TestWrapKeepsAnInnerCode(t *testing.T) {
	inner := fmt.Errorf("exec: %w", TryAgain("agent down"))
	got := Wrap(999, "ADD pod a", inner)
	if got.Code != 11 || got.Msg != "ADD pod a: agent down" {
		t.Errorf("Wrap of a coded error = %d %q", got.Code, got.Msg)
	}
	got = Wrap(7, "ADD pod a", errors.New("plain"))
	if got.Code != 7 || got.Msg != "ADD pod a: plain" {
		t.Errorf("Wrap of a plain error = %d %q", got.Code, got.Msg)
	}
	if Wrap(7, "x", nil) != nil || Code(nil) != 0 || Code(errors.New("e")) != 999 || Code(inner) != 11 {
		t.Error("nil or Code() mishandled")
	}
}
