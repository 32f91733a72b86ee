//go:build tools

// Package tools pins the code generators Tabby uses, so `go build` of them
// here gives the same binaries on every machine (the module proxy refuses
// `go install pkg@version` for some modules).
package tools

import (
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
