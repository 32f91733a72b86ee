package cnierr

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// Config is a netconf problem (code 7, invalid network config).
func Config(format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, args...), "")
}

// Env is a problem with the CNI_* environment (code 4).
func Env(format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf(format, args...), "")
}

// TryAgain is a transient failure the runtime should retry (code 11).
func TryAgain(format string, args ...any) *types.Error {
	return types.NewError(types.ErrTryAgainLater, fmt.Sprintf(format, args...), "")
}

// NotAvailable is STATUS's answer when the plugin cannot serve ADDs (code 50).
func NotAvailable(format string, args ...any) *types.Error {
	return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf(format, args...), "")
}

// Internal is any other failure (code 999).
func Internal(format string, args ...any) *types.Error {
	return types.NewError(types.ErrInternal, fmt.Sprintf(format, args...), "")
}

// NetNS is a problem with CNI_NETNS (code 8).
func NetNS(format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf(format, args...), "")
}

// Wrap gives err a code unless it already carries one (a *types.Error from
// a delegated plugin or a deeper layer keeps its own), prefixing what was
// being done.
func Wrap(code uint, doing string, err error) *types.Error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, doing+": "+te.Msg, te.Details)
	}
	return types.NewError(code, doing+": "+err.Error(), "")
}

// Code returns err's CNI code (999 when it has none, 0 for nil).
func Code(err error) uint {
	if err == nil {
		return 0
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return types.ErrInternal
}
