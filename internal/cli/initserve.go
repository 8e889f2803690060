package cli

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"latchkey/internal/server"
	"latchkey/internal/timespec"
	"latchkey/internal/token"
)

// initialized is the JSON output of init.
type initialized struct {
	AdminToken string    `json:"admin_token"`
	ID         string    `json:"id"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func initCmd() *cobra.Command {
	var dir, ttl string
	c := &cobra.Command{
		Use:   "init --data DIR [--ttl DURATION] [--output json]",
		Short: "Create an empty store and keys; print the first admin token once",
		Long: `Create DIR (mode 0700) with an empty store and keys, and print the first admin
token (scopes admin:*) on stdout. It is shown this once: keep it in a secret
manager, use it to issue narrower admin tokens, and let it expire.

It is an error if DIR already holds a store.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringVar(&dir, "data", "", "data directory to create")
	c.Flags().StringVar(&ttl, "ttl", "", "lifetime of the admin token (default: the maximum, 30d)")
	_ = c.MarkFlagRequired("data")
	_ = c.MarkFlagDirname("data")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		d, err := parseDuration("ttl", ttl)
		if err != nil {
			return err
		}
		text, expires, err := server.Init(cmd.Context(), dir, d)
		if err != nil {
			return err
		}
		var id string
		if p, err := token.Parse(text); err == nil {
			id = p.ID
		}
		if out.json() {
			return writeJSON(cmd.OutOrStdout(), initialized{AdminToken: text, ID: id, ExpiresAt: expires.UTC()})
		}
		if _, err := fmt.Fprintln(cmd.OutOrStdout(), text); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "initialized %s; admin token %s expires %s and is shown only this once\n",
			oneLine(dir), id, when(expires))
		return nil
	}
	return c
}

func serveCmd() *cobra.Command {
	var cfg server.Config
	var maxTTL string
	c := &cobra.Command{
		Use:   "serve --data DIR [--admin-addr A] [--max-ttl DURATION] [--admin-tls-cert F --admin-tls-key F] [--audit-sync normal|full] [--checkpoint-dir DIR]",
		Short: "Run the admin API; initializes DIR if empty",
		Long: `Run the admin API until SIGINT or SIGTERM, then shut down gracefully.
If DIR holds no store yet, it is initialized first and the first admin token
is printed once on stdout. Once listening, the admin API's base URL is
written to DIR/admin.url (removed on shutdown).

Every signed audit checkpoint is written to DIR/checkpoints, one file per
tree size, and to --checkpoint-dir if given. With --audit-sync full, every
audit commit is also fsynced, so an acknowledged operation's record
survives power loss, not only a crash of the process.`,
		Args: cobra.NoArgs,
	}
	c.Flags().StringVar(&cfg.DataDir, "data", "", "data directory")
	c.Flags().StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:7370", "listen address of the admin API (port 0: any free port)")
	c.Flags().StringVar(&maxTTL, "max-ttl", "", "longest lifetime of any token (default 30d)")
	c.Flags().StringVar(&cfg.GatewayAddr, "gateway-addr", "", "listen address of the gateway, e.g. 127.0.0.1:7380 (empty: no gateway)")
	c.Flags().StringVar(&cfg.TLSCert, "admin-tls-cert", "", "PEM certificate: serve the admin API over HTTPS (required off loopback)")
	c.Flags().StringVar(&cfg.TLSKey, "admin-tls-key", "", "PEM private key for --admin-tls-cert")
	c.Flags().StringVar(&cfg.AuditSync, "audit-sync", "normal", "audit durability: normal (a record survives a kill of the process) or full (it survives power loss: fsync per commit)")
	c.Flags().StringVar(&cfg.CheckpointDir, "checkpoint-dir", "", "also write every signed audit checkpoint to this directory (e.g. one shipped off the host)")
	_ = c.RegisterFlagCompletionFunc("audit-sync", cobra.FixedCompletions([]string{"normal", "full"}, cobra.ShellCompDirectiveNoFileComp))
	_ = c.MarkFlagDirname("checkpoint-dir")
	_ = c.MarkFlagRequired("data")
	_ = c.MarkFlagDirname("data")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		d, err := parseDuration("max-ttl", maxTTL)
		if err != nil {
			return err
		}
		cfg.MaxTTL = d
		if cfg.AuditSync != "normal" && cfg.AuditSync != "full" {
			return usagef("--audit-sync %q: want normal or full", trunc(cfg.AuditSync))
		}
		cfg.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
		return server.Run(cmd.Context(), cfg, cmd.OutOrStdout())
	}
	return c
}

// parseDuration parses an optional positive duration flag; empty is zero
// (the default).
func parseDuration(flag, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := timespec.ParseDuration(s)
	if err != nil {
		return 0, usagef("--%s: %v", flag, err)
	}
	if d <= 0 {
		return 0, usagef("--%s: want a positive duration", flag)
	}
	return d, nil
}
