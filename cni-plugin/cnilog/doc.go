// Package cnilog builds the slog.Logger a CNI plugin invocation logs to:
// stderr (which the container runtime captures) at the netconf's log_level,
// plus Calico's optional log_file_path with size-based rotation
// (log_file_max_size MB, log_file_max_age days, log_file_max_count files).
// Stdout is never written: it carries the CNI result.
package cnilog
