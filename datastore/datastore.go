// Package datastore is the one interface through which Tabby reads and writes
// projectcalico.org/v3 resources, whatever engine stores them. Backends live in
// subpackages (etcd now, kubernetes later). Every write is compare-and-swap on
// the resource version, so concurrent writers never lose an update: the loser
// gets ErrConflict and re-reads.
//
// Resource versions are opaque strings to callers (etcd's mod revision in
// decimal; a Kubernetes resourceVersion later).
package datastore

import (
	"context"
	"errors"
	"fmt"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// Sentinel errors; backends wrap them (test with errors.Is) in an *Error that
// names the resource.
var (
	ErrNotFound      = errors.New("resource does not exist")
	ErrAlreadyExists = errors.New("resource already exists")
	ErrConflict      = errors.New("resource version conflict: the resource was modified since it was read")
	ErrCompacted     = errors.New("watch revision has been compacted")
	ErrUnavailable   = errors.New("datastore unavailable")
)

// Error is a datastore failure on one resource.
type Error struct {
	Op  string // "create", "update", "delete", "get", "list", "watch"
	Key v3.Key
	Err error
}

func (e *Error) Error() string {
	if e.Key.Name == "" {
		return fmt.Sprintf("%s %s: %v", e.Op, e.Key.Kind, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.Key, e.Err)
}
func (e *Error) Unwrap() error { return e.Err }

// ListResult is a consistent snapshot of one kind.
type ListResult struct {
	Items    []v3.Resource
	Revision string // store revision the snapshot was read at; pass to Watch
}

// EventType says what happened to a resource.
type EventType int

const (
	Added EventType = iota + 1
	Modified
	Deleted
	// WatchError ends a watch: Err says why (wrapping ErrCompacted when the
	// start revision is gone, in which case the caller must re-list).
	WatchError
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "Added"
	case Modified:
		return "Modified"
	case Deleted:
		return "Deleted"
	case WatchError:
		return "Error"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change. For Deleted, Object is the last stored state.
type Event struct {
	Type     EventType
	Object   v3.Resource
	Revision string
	Err      error
}

// Watcher delivers events in revision order until Stop, context cancellation
// or a WatchError event, after which the channel is closed.
type Watcher interface {
	ResultChan() <-chan Event
	Stop()
}

// Interface is implemented by every backend. Resources passed in are not
// modified; returned resources are fresh copies the caller owns.
type Interface interface {
	// Get returns one resource, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key v3.Key) (v3.Resource, error)
	// List returns all resources of a kind; namespace "" means every namespace
	// (and is the only valid value for cluster-scoped kinds).
	List(ctx context.Context, kind, namespace string) (ListResult, error)
	// Create stores a new resource, setting resourceVersion, uid and
	// creationTimestamp; it fails with ErrAlreadyExists if the key is taken.
	Create(ctx context.Context, r v3.Resource) (v3.Resource, error)
	// Update replaces a resource if and only if r's resourceVersion is the
	// stored one (ErrConflict otherwise; ErrNotFound if it is gone). An empty
	// resourceVersion is refused: read first. uid and creationTimestamp are
	// kept from the stored resource.
	Update(ctx context.Context, r v3.Resource) (v3.Resource, error)
	// Delete removes a resource, only if its resourceVersion still matches
	// when one is given; it returns the deleted resource.
	Delete(ctx context.Context, key v3.Key, resourceVersion string) (v3.Resource, error)
	// Watch streams changes of a kind (in one namespace, or all when "")
	// that happen after fromRevision ("" = from now).
	Watch(ctx context.Context, kind, namespace, fromRevision string) (Watcher, error)
	// Close releases connections.
	Close() error
}

// IsNotFound and friends are shorthands for errors.Is.
func IsNotFound(err error) bool      { return errors.Is(err, ErrNotFound) }
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }
func IsConflict(err error) bool      { return errors.Is(err, ErrConflict) }
