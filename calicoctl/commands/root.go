package commands

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tabbynet/tabby/datastore"
	"github.com/tabbynet/tabby/datastore/backend"
	"github.com/tabbynet/tabby/internal/version"
)

// Version and GitCommit describe this build; the Makefile sets them at link
// time through internal/version, shared by every Tabby binary.
var (
	Version   = version.Version
	GitCommit = version.Commit
)

// DefaultConfigPath is where calicoctl looks for its configuration when
// --config is not given, as in Calico. When the file does not exist the
// environment is used instead.
const DefaultConfigPath = "/etc/calico/calicoctl.cfg"

// CLI is one calicoctl: its command tree, its I/O and how it reaches the
// datastore. Build it with New; it is not safe for concurrent Execute calls
// (flags hold the values of the run in progress), so use one per run.
type CLI struct {
	Stdout io.Writer
	Stderr io.Writer
	// Stdin is read for `-f -`; nil means os.Stdin.
	Stdin io.Reader
	// Getenv reads the environment (os.Getenv in production).
	Getenv func(string) string
	// DefaultConfigPath is the configuration file used when --config is not
	// given and the file exists; New sets the package's DefaultConfigPath.
	DefaultConfigPath string
	// DatastoreTimeout, when non-zero, bounds connecting to the datastore
	// and each request, overriding the backend's defaults.
	DatastoreTimeout time.Duration

	root       *cobra.Command
	configPath string
	logLevel   string
	log        *slog.Logger
}

// New builds calicoctl writing to stdout and stderr and reading its
// datastore settings through getenv.
func New(stdout, stderr io.Writer, getenv func(string) string) *CLI {
	c := &CLI{Stdout: stdout, Stderr: stderr, Getenv: getenv, DefaultConfigPath: DefaultConfigPath}
	c.root = c.newRoot()
	return c
}

// NewRootCommand is New for callers that only need the cobra command.
func NewRootCommand(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	return New(stdout, stderr, getenv).Root()
}

// Root is the top-level cobra command.
func (c *CLI) Root() *cobra.Command { return c.root }

// AddCommand adds command groups (ipam, node, ...) under the root. They
// inherit the --config and --log-level flags and reach the datastore
// through c.Datastore.
func (c *CLI) AddCommand(cmds ...*cobra.Command) { c.root.AddCommand(cmds...) }

// Execute runs calicoctl with args (without the program name). An error is
// printed to Stderr and returned; the caller exits non-zero on it.
func (c *CLI) Execute(args []string) error {
	c.root.SetArgs(args)
	c.root.SetOut(c.Stdout)
	c.root.SetErr(c.Stderr)
	if c.Stdin != nil {
		c.root.SetIn(c.Stdin)
	}
	err := c.root.Execute()
	if err != nil {
		msg := strings.TrimRight(err.Error(), "\n")
		fmt.Fprintln(c.Stderr, msg)
	}
	return err
}

// Logger is the logger of the run in progress (--log-level), writing to Stderr.
func (c *CLI) Logger() *slog.Logger {
	if c.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.log
}

func (c *CLI) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "calicoctl",
		Short: "Manage Tabby (Calico-compatible) resources",
		Long: `calicoctl manages the projectcalico.org/v3 resources of a Tabby cluster.

It reaches the datastore described by --config (default ` + DefaultConfigPath + ` when
that file exists) or else by the environment: DATASTORE_TYPE (etcdv3),
ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without a subcommand there is nothing to do but explain.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q for calicoctl: run 'calicoctl --help' for the list", args[0])
			}
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			level, err := parseLogLevel(c.logLevel)
			if err != nil {
				return err
			}
			c.log = slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: level}))
			return nil
		},
	}
	// Calico's calicoctl has no completion command; keep cobra's out of the listing.
	root.CompletionOptions.HiddenDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVarP(&c.configPath, "config", "c", "", "Path to the file containing connection configuration in YAML or JSON format (default "+DefaultConfigPath+" if it exists, else the environment)")
	pf.StringVarP(&c.logLevel, "log-level", "l", "panic", "Set the log level (panic, fatal, error, warn, info, debug)")
	// Accepted so that scripts written for Calico's calicoctl keep working;
	// Tabby has no kubeconfig contexts yet and no version-mismatch guard.
	pf.String("context", "", "The name of the kubeconfig context to use (accepted for compatibility; unused)")
	pf.Bool("allow-version-mismatch", false, "Allow client and cluster versions mismatch (accepted for compatibility; there is no check)")

	root.AddCommand(
		c.newCreateCommand(),
		c.newApplyCommand(),
		c.newReplaceCommand(),
		c.newDeleteCommand(),
		c.newGetCommand(),
		c.newPatchCommand(),
		c.newLabelCommand(),
		c.newValidateCommand(),
		c.newVersionCommand(),
	)
	return root
}

// parseLogLevel maps Calico's logrus level names onto slog. "panic" and
// "fatal" (Calico's default is panic) mean: log nothing below an error that
// stops the program, which calicoctl reports on stderr anyway.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug", "trace":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	case "fatal", "panic", "":
		return slog.LevelError + 4, nil
	}
	return 0, fmt.Errorf("unknown log level: %s, expected one of: panic, fatal, error, warn, info, debug", s)
}

// Config resolves the datastore configuration as Calico's calicoctl does:
// the --config file if given (it must exist), else the default file if it
// exists, else the environment.
func (c *CLI) Config() (datastore.Config, error) {
	path := c.configPath
	if path == "" {
		if _, err := os.Stat(c.DefaultConfigPath); err == nil {
			path = c.DefaultConfigPath
		}
	}
	if path == "" {
		cfg, err := datastore.ConfigFromEnv(c.getenv)
		if err != nil {
			return datastore.Config{}, err
		}
		c.Logger().Debug("datastore configuration from the environment", "type", cfg.Type, "endpoints", cfg.Etcd.Endpoints)
		return cfg, nil
	}
	if _, err := os.Stat(path); err != nil {
		return datastore.Config{}, fmt.Errorf("error reading config file: %s: %w", path, err)
	}
	cfg, err := datastore.LoadAPIConfig(path)
	if err != nil {
		return datastore.Config{}, err
	}
	c.Logger().Debug("datastore configuration from file", "path", path, "type", cfg.Type, "endpoints", cfg.Etcd.Endpoints)
	return cfg, nil
}

// Datastore connects to the configured datastore. The caller closes it.
func (c *CLI) Datastore() (datastore.Interface, error) {
	cfg, err := c.Config()
	if err != nil {
		return nil, err
	}
	if c.DatastoreTimeout > 0 {
		cfg.Etcd.DialTimeout = c.DatastoreTimeout
		cfg.Etcd.RequestTimeout = c.DatastoreTimeout
	}
	ds, err := backend.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the datastore: %w", err)
	}
	return ds, nil
}

func (c *CLI) getenv(name string) string {
	if c.Getenv == nil {
		return ""
	}
	return c.Getenv(name)
}

func (c *CLI) stdin(cmd *cobra.Command) io.Reader {
	if c.Stdin != nil {
		return c.Stdin
	}
	return cmd.InOrStdin()
}

// withDatastore connects, runs f and closes the connection.
func (c *CLI) withDatastore(ctx context.Context, f func(ctx context.Context, ds datastore.Interface) error) error {
	ds, err := c.Datastore()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := ds.Close(); cerr != nil {
			c.Logger().Warn("close datastore connection", "err", cerr)
		}
	}()
	return f(ctx, ds)
}
