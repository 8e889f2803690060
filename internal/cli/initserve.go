package cli

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"latchkey/internal/audit"
	"latchkey/internal/dpop"
	"latchkey/internal/gateway"
	"latchkey/internal/notify"
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
	var dir, ttl, store string
	c := &cobra.Command{
		Use:   "init --data DIR [--store DSN] [--ttl DURATION] [--output json]",
		Short: "Create an empty store and keys; print the first admin token once",
		Long: `Create DIR (mode 0700) with an empty store and keys, and print the first admin
token (scopes admin:*) on stdout. It is shown this once: keep it in a secret
manager, use it to issue narrower admin tokens, and let it expire.

It is an error if DIR already holds a store.

With --store, the store is the PostgreSQL database DSN names (it must exist;
init creates the tables), and DIR receives only the keys: copy seal.key,
audit.key and audit.pub to the data directory of every other process that
serves the same store. It is an error if that database already holds an
admin token.`,
		Args: cobra.NoArgs,
	}
	out := addOutput(c, formatText, formatJSON)
	c.Flags().StringVar(&dir, "data", "", "data directory to create")
	c.Flags().StringVar(&ttl, "ttl", "", "lifetime of the admin token (default: the maximum, 30d)")
	addStoreFlag(c.Flags(), &store)
	_ = c.MarkFlagRequired("data")
	_ = c.MarkFlagDirname("data")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		d, err := parseDuration("ttl", ttl)
		if err != nil {
			return err
		}
		if err := checkStore(store); err != nil {
			return err
		}
		text, expires, err := server.Init(cmd.Context(), dir, store, d)
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
	var inProcessIndex bool
	var maxTTL, requestTTL, sweepEvery, expiryNotice string
	var proxies []string
	c := &cobra.Command{
		Use:   "serve --data DIR [--store DSN] [--gateway-addr A] [--admin-addr A] [--pg-addr A] [--max-ttl DURATION] [--trusted-proxy CIDR ...] [--token-rate N --token-burst N] [--failure-rate N --failure-burst N] [--admin-tls-cert F --admin-tls-key F] [--gateway-tls-cert F --gateway-tls-key F | --gateway-tls-dev] [--gateway-client-ca F] [--gateway-public-url URL] [--dpop-nonce] [--dpop-window D] [--audit-sync normal|full] [--audit-delay D] [--checkpoint-dir DIR] [--webhook-attempts N] [--webhook-backoff D] [--request-approvals N] [--request-ttl DURATION] [--sweep-every D] [--expiry-notice D] [--leak-keys FILE]",
		Short: "Run the gateway and the admin API; initializes DIR if empty",
		Long: `Run the gateway and the admin API until SIGINT or SIGTERM, then shut down
gracefully, draining requests in flight. If DIR holds no store yet, it is
initialized first and the first admin token is printed once on stdout. Once
listening, the base URLs are written to DIR/admin.url and DIR/gateway.url
(removed on shutdown).

With --pg-addr, a PostgreSQL gateway listens there too (its address is
written to DIR/postgres.url): psql and other clients connect with user =
contractor, password = token, database = "SERVICE/DATABASE" of a postgres
service. It offers TLS with the gateway's certificate (--gateway-tls-cert
or --gateway-tls-dev); without one it listens only on loopback.

With --store, the store and the audit log are in the PostgreSQL database DSN
names instead of DIR/latchkey.db (the tables are created at the first start),
and several serve processes may share it: each needs its own DIR holding
copies of the same keys (seal.key, audit.key, audit.pub), and serve refuses
to start on an initialized store from a DIR without them. The password of
DSN never appears in logs or errors; prefer PGPASSWORD or ~/.pgpass.

The gateway serves each service NAME at /NAME/... . Off a loopback address
it needs --gateway-tls-cert and --gateway-tls-key, as the admin API needs
its own. --gateway-tls-dev instead serves it with a self-signed development
certificate kept in DIR (gateway-dev.crt; made once, reused by later starts)
whose SHA-256 fingerprint is printed at start, for clients to pin.

Over TLS the gateway requests a client certificate (never requires one): a
token issued with --bind mtls --x5t T is accepted only over a connection
presenting the certificate of thumbprint T (RFC 8705), self-signed or not.
With --gateway-client-ca FILE, a presented certificate must chain to one of
FILE's CAs or the handshake fails. Client-certificate headers set by a proxy
are never believed: behind a TLS-terminating proxy, certificate-bound tokens
are refused (proof_invalid).
X-Forwarded-For is believed only from --trusted-proxy networks.
Each token may make --token-rate requests per second (bursts of
--token-burst); a source that keeps failing authentication is slowed down.
Tokens bound to a DPoP key (token issue --bind dpop) are accepted only as
"Authorization: DPoP TOKEN" with a DPoP proof (RFC 9449) whose htu is
--gateway-public-url followed by the request path (default: the scheme and
--gateway-addr, or the request's Host when that address is a wildcard or
port 0), whose iat is within --dpop-window of the clock; with --dpop-nonce
proofs must also carry a nonce the gateway issued (DPoP-Nonce header).
The admin listener also serves /healthz, /readyz and Prometheus /metrics.

Every signed audit checkpoint is written to DIR/checkpoints, one file per
tree size, and to --checkpoint-dir if given. With --audit-sync full, every
audit commit is also fsynced, so an acknowledged operation's record
survives power loss, not only a crash of the process.

Webhooks (latchkey webhook add) are sent by this process, from a queue
in the store: a failed delivery is retried --webhook-attempts times in
all, after --webhook-backoff, then about 6, 24, 120, 360 and 720 times
it, with jitter. Replicas sharing a store never send the same attempt.

Every --sweep-every (0: never) the sweeper revokes tokens unused for their
policy's idle timeout (reason idle), ends the engagements that are over
(reason engagement_ended; the contractor is disabled), revokes rotated
tokens whose grace has passed (reason rotated), and sends one
expiring-soon notice per token --expiry-notice before it expires. Each
action is audited as actor latchkey-sweeper. Replicas sharing a store
take turns: one sweeps at a time.


With --leak-keys FILE (GitHub's key document, from
https://api.github.com/meta/public_keys/secret_scanning), the admin listener
takes secret scanning reports at POST /v1/leaks, signed by one of its keys,
and revokes each reported token at once.`,
		Args: cobra.NoArgs,
	}
	c.Flags().StringVar(&cfg.DataDir, "data", "", "data directory")
	addStoreFlag(c.Flags(), &cfg.Store)
	c.Flags().StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:7370", "listen address of the admin API (port 0: any free port)")
	c.Flags().StringVar(&maxTTL, "max-ttl", "", "longest lifetime of any token (default 30d)")
	c.Flags().StringVar(&cfg.GatewayAddr, "gateway-addr", server.DefaultGatewayAddr, "listen address of the gateway (port 0: any free port)")
	c.Flags().StringVar(&cfg.PGAddr, "pg-addr", "", "listen address of the PostgreSQL gateway, e.g. "+server.SuggestedPGAddr+" (port 0: any free port; empty: off); off loopback it needs the gateway's TLS flags")
	c.Flags().StringVar(&cfg.GatewayTLSCert, "gateway-tls-cert", "", "PEM certificate: serve the gateway over HTTPS (required off loopback)")
	c.Flags().StringVar(&cfg.GatewayTLSKey, "gateway-tls-key", "", "PEM private key for --gateway-tls-cert")
	c.Flags().BoolVar(&cfg.GatewayTLSDev, "gateway-tls-dev", false, "serve the gateway over HTTPS with a self-signed development certificate kept in the data directory (its fingerprint is printed)")
	c.Flags().StringVar(&cfg.GatewayClientCA, "gateway-client-ca", "", "PEM file of CAs: a client certificate presented to the gateway must chain to one of them (default: any, self-signed included, for certificate-bound tokens)")
	c.Flags().StringVar(&cfg.GatewayPublicURL, "gateway-public-url", "", "the gateway's URL as contractors call it, which DPoP proofs must name (default: from --gateway-addr and the TLS flags)")
	c.Flags().BoolVar(&cfg.DPoPNonce, "dpop-nonce", false, "require DPoP proofs to carry a nonce issued by the gateway (DPoP-Nonce header, RFC 9449 section 8)")
	c.Flags().DurationVar(&cfg.DPoPWindow, "dpop-window", dpop.DefaultWindow, "how far a DPoP proof's iat may be from the gateway's clock")
	c.Flags().StringArrayVar(&proxies, "trusted-proxy", nil, "network (CIDR) of a proxy in front of the gateway whose X-Forwarded-For is believed (repeatable)")
	c.Flags().Float64Var(&cfg.TokenRate, "token-rate", gateway.DefaultTokenRate, "gateway requests per second allowed to each token")
	c.Flags().IntVar(&cfg.TokenBurst, "token-burst", gateway.DefaultTokenBurst, "gateway requests a token may make at once, above its rate")
	c.Flags().Float64Var(&cfg.FailureRate, "failure-rate", gateway.DefaultFailureRate, "failed gateway authentications per second allowed from one source address (then 429 rate_limited)")
	c.Flags().IntVar(&cfg.FailureBurst, "failure-burst", gateway.DefaultFailureBurst, "failed gateway authentications one source address may make at once, above its rate")
	c.Flags().BoolVar(&cfg.AccessLog, "access-log", true, "log one line per gateway request on stderr")
	c.Flags().StringVar(&cfg.TLSCert, "admin-tls-cert", "", "PEM certificate: serve the admin API over HTTPS (required off loopback)")
	c.Flags().StringVar(&cfg.TLSKey, "admin-tls-key", "", "PEM private key for --admin-tls-cert")
	c.Flags().DurationVar(&cfg.AuditDelay, "audit-delay", audit.DefaultIntegrateDelay,
		"how long acknowledged audit records (journalled, durable) gather before they are added to the Merkle tree in one transaction: longer means larger, cheaper batches (a search or proof waits for the records before it at most that long)")
	c.Flags().BoolVar(&inProcessIndex, "index-in-process", false, "with the SQLite store, index the audit log for search in serve's own process, instead of in a process beside it at the lowest priority (latchkey audit index --follow)")
	c.Flags().StringVar(&cfg.AuditSync, "audit-sync", "normal", "audit durability: normal (a record survives a kill of the process) or full (it survives power loss: fsync per commit)")
	c.Flags().StringVar(&cfg.LeakKeys, "leak-keys", "", "accept signed leak reports at POST /v1/leaks, verified with the keys of this file (GitHub's secret scanning key document)")
	c.Flags().StringVar(&cfg.CheckpointDir, "checkpoint-dir", "", "also write every signed audit checkpoint to this directory (e.g. one shipped off the host)")
	c.Flags().IntVar(&cfg.WebhookAttempts, "webhook-attempts", notify.DefaultAttempts, "most attempts per webhook delivery before it fails")
	c.Flags().DurationVar(&cfg.WebhookBackoff, "webhook-backoff", notify.DefaultBackoff, "delay before a webhook delivery's first retry; later ones grow to 720 times it")
	c.Flags().IntVar(&cfg.RequestApprovals, "request-approvals", 1, "distinct approvers an access request needs")
	c.Flags().StringVar(&requestTTL, "request-ttl", "", "how long an access request waits for approval, and an approved one for its fetch (default 24h)")
	c.Flags().StringVar(&sweepEvery, "sweep-every", "30s", "how often the sweeper runs (0: never)")
	c.Flags().DurationVar(&cfg.InvalidationPoll, "invalidation-poll", server.DefaultInvalidationPoll, "how often to read the store's invalidation feed, so that tokens revoked by another process on the same store are refused here")
	c.Flags().StringVar(&expiryNotice, "expiry-notice", "24h", "send a token's expiring-soon notice this long before it expires")
	_ = c.RegisterFlagCompletionFunc("audit-sync", cobra.FixedCompletions([]string{"normal", "full"}, cobra.ShellCompDirectiveNoFileComp))
	_ = c.MarkFlagDirname("checkpoint-dir")
	_ = c.MarkFlagRequired("data")
	_ = c.MarkFlagDirname("data")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg.IndexerProcess = !inProcessIndex
		d, err := parseDuration("max-ttl", maxTTL)
		if err != nil {
			return err
		}
		cfg.MaxTTL = d
		if err := checkStore(cfg.Store); err != nil {
			return err
		}
		if cfg.RequestTTL, err = parseDuration("request-ttl", requestTTL); err != nil {
			return err
		}
		if cfg.RequestApprovals < 1 || cfg.RequestApprovals > 16 {
			return usagef("--request-approvals %d: want 1 to 16", cfg.RequestApprovals)
		}
		if sweepEvery == "0" {
			cfg.SweepEvery = 0
		} else if cfg.SweepEvery, err = timespec.ParseDuration(sweepEvery); err != nil {
			return usagef("--sweep-every %q: want a duration like 30s, or 0 to disable the sweeper", trunc(sweepEvery))
		}
		if cfg.ExpiryNotice, err = parseDuration("expiry-notice", expiryNotice); err != nil || cfg.ExpiryNotice == 0 {
			return usagef("--expiry-notice %q: want a positive duration like 24h", trunc(expiryNotice))
		}
		for _, p := range proxies {
			pre, err := netip.ParsePrefix(p)
			if err != nil {
				return usagef("--trusted-proxy %q: want a network such as 10.0.0.0/8", trunc(p))
			}
			cfg.TrustedProxies = append(cfg.TrustedProxies, pre)
		}
		if cfg.AuditDelay < time.Millisecond || cfg.AuditDelay > time.Second {
			return usagef("--audit-delay %s: want 1ms to 1s", cfg.AuditDelay)
		}
		if cfg.InvalidationPoll <= 0 {
			return usagef("--invalidation-poll %s: want a positive duration like 1s", cfg.InvalidationPoll)
		}
		if cfg.TokenRate <= 0 || cfg.TokenBurst < 1 {
			return usagef("--token-rate and --token-burst must be positive")
		}
		if cfg.FailureRate <= 0 || cfg.FailureBurst < 1 {
			return usagef("--failure-rate and --failure-burst must be positive")
		}
		if cfg.WebhookAttempts < 1 || cfg.WebhookAttempts > 100 {
			return usagef("--webhook-attempts %d: want 1 to 100", cfg.WebhookAttempts)
		}
		if cfg.WebhookBackoff < time.Millisecond || cfg.WebhookBackoff > time.Hour {
			return usagef("--webhook-backoff %s: want 1ms to 1h", cfg.WebhookBackoff)
		}
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
