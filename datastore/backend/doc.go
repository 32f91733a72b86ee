// Package backend opens the datastore a datastore.Config names (see
// datastore.ConfigFromEnv and datastore.LoadAPIConfig). It owns only the choice
// of backend; it must not add behaviour on top of the backends.
package backend
