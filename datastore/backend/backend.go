package backend

import (
	"fmt"

	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/etcd"
)

// New opens the datastore described by cfg.
func New(cfg datastore.Config) (datastore.Interface, error) {
	switch cfg.Type {
	case datastore.TypeEtcdV3:
		s, err := etcd.New(cfg.Etcd)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return s, nil
	case datastore.TypeKubernetes:
		return nil, fmt.Errorf("datastore type %q is not supported yet; use DATASTORE_TYPE=%s", datastore.TypeKubernetes, datastore.TypeEtcdV3)
	default:
		return nil, fmt.Errorf("datastore type %q is not known: use %q (or %q, once supported)", cfg.Type, datastore.TypeEtcdV3, datastore.TypeKubernetes)
	}
}
