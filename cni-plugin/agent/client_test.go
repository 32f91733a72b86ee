package agent

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The agent's own refusals keep its message and get a code from the gRPC
// status; they are never mistaken for "agent down".
func TestErrorMapsAgentAnswers(t *testing.T) {
	c, err := Dial(filepath.Join(t.TempDir(), "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		err  error
		code uint
	}{
		{status.Error(codes.InvalidArgument, `pool "nope" does not exist`), types.ErrInvalidNetworkConfig},
		{status.Error(codes.NotFound, "no such pool"), types.ErrInvalidNetworkConfig},
		{status.Error(codes.FailedPrecondition, "pool disabled"), types.ErrInvalidNetworkConfig},
		{status.Error(codes.ResourceExhausted, "pool 10.9.0.0/30 is exhausted"), types.ErrInternal},
		{status.Error(codes.Aborted, "revision conflict, retries exhausted"), types.ErrTryAgainLater},
		{status.Error(codes.Unavailable, "datastore unavailable"), types.ErrTryAgainLater},
		{status.Error(codes.Internal, "boom"), types.ErrInternal},
	}
	for _, tt := range tests {
		got := c.Error("ADD x", tt.err, types.ErrTryAgainLater)
		if got.Code != tt.code {
			t.Errorf("%v: code %d, want %d", tt.err, got.Code, tt.code)
		}
		msg := status.Convert(tt.err).Message()
		if !strings.Contains(got.Msg, "ADD x: calico-node agent: "+msg) {
			t.Errorf("%v: message %q lost the agent's words", tt.err, got.Msg)
		}
		if c.Unreachable(tt.err) {
			t.Errorf("%v: taken for an unreachable agent", tt.err)
		}
	}
	if c.Error("x", nil, 11) != nil {
		t.Error("nil error became a CNI error")
	}
}
