package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tabbynet/tabby/api/agentpb"
	"github.com/tabbynet/tabby/cni-plugin/cnierr"
)

// Timeouts for one plugin invocation. A runtime kills a plugin that hangs,
// so every RPC has a bound; AddWorkload and AssignIPs get the longest,
// because the agent serializes IPAM per node and a burst of pods queues.
const (
	StatusTimeout = 5 * time.Second
	CallTimeout   = 90 * time.Second
	dialTimeout   = 3 * time.Second
)

// Client is a connection to one agent. It is cheap to make: nothing is
// dialled until the first call.
type Client struct {
	agentpb.AgentClient
	Socket string
	conn   *grpc.ClientConn

	mu      sync.Mutex
	dialErr error // the last failure to reach the socket, if any
}

// Dial prepares a client for the agent at socket (an absolute path).
func Dial(socket string) (*Client, error) {
	c := &Client{Socket: socket}
	conn, err := grpc.NewClient("passthrough:///"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(c.dial),
	)
	if err != nil {
		return nil, fmt.Errorf("prepare a gRPC client for the calico-node agent at %s: %w", socket, err)
	}
	c.conn = conn
	c.AgentClient = agentpb.NewAgentClient(conn)
	return c, nil
}

// dial connects to the unix socket and remembers why it could not, so that
// a later Unavailable can be told apart from the agent's own refusal.
func (c *Client) dial(ctx context.Context, _ string) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	c.mu.Lock()
	c.dialErr = err
	c.mu.Unlock()
	return conn, err
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Unreachable reports whether err means the agent could not be reached at
// all (no socket, nobody listening, connection dropped), as opposed to the
// agent answering with an error.
func (c *Client) Unreachable(err error) bool {
	if err == nil {
		return false
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	if st.Code() != codes.Unavailable && st.Code() != codes.DeadlineExceeded {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A dial that failed, or a connection that broke before any answer:
	// both leave Unavailable with no message from the agent itself.
	return c.dialErr != nil || st.Code() == codes.Unavailable && st.Message() != "" && isTransport(st.Message())
}

func isTransport(msg string) bool {
	for _, s := range []string{"connection error", "error reading from server", "transport is closing", "EOF",
		"connection refused", "connection reset", "broken pipe", "no such file"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// DownMessage says that the agent is not reachable and what to do about it.
func (c *Client) DownMessage(err error) string {
	reason := ""
	c.mu.Lock()
	if c.dialErr != nil {
		reason = c.dialErr.Error()
	}
	c.mu.Unlock()
	if reason == "" {
		if st, ok := status.FromError(err); ok {
			reason = st.Message()
		} else if err != nil {
			reason = err.Error()
		}
	}
	hint := "is calico-node running on this node?"
	if _, statErr := os.Stat(c.Socket); errors.Is(statErr, os.ErrNotExist) {
		hint = "the socket does not exist: start calico-node on this node, or point the netconf's \"agent_socket\" at its CALICO_AGENT_SOCKET"
	}
	return fmt.Sprintf("calico-node agent is not reachable at %s (%s): %s", c.Socket, reason, hint)
}

// Error turns a failed call into a CNI error. An unreachable agent gets
// downCode (11, "try again later", on ADD; DEL and CHECK use it too, since
// they cannot be completed without the agent either) and a message naming
// the socket; an answer from the agent keeps the agent's message, with a
// code chosen from its gRPC status.
func (c *Client) Error(doing string, err error, downCode uint) *types.Error {
	if err == nil {
		return nil
	}
	if c.Unreachable(err) {
		return types.NewError(downCode, doing+": "+c.DownMessage(err), "")
	}
	st, ok := status.FromError(err)
	if !ok {
		return cnierr.Internal("%s: %v", doing, err)
	}
	code := types.ErrInternal
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.OutOfRange:
		// A request the agent cannot serve as configured: an unknown or
		// disabled pool, a pool of the wrong family, a bad address.
		code = types.ErrInvalidNetworkConfig
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded:
		code = types.ErrTryAgainLater
	}
	return types.NewError(code, fmt.Sprintf("%s: calico-node agent: %s", doing, st.Message()), "")
}

// Ctx returns a context bounded by d.
func Ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
