package server

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"latchkey/internal/pgwire"
	"latchkey/internal/usage"
)

// pgTLS is the PostgreSQL gateway's TLS config: the HTTP gateway's
// certificate, without asking for client certificates. It must be made
// before the HTTP gateway starts, which changes gwTLS (its NextProtos).
func pgTLS(gwTLS *tls.Config) *tls.Config {
	if gwTLS == nil {
		return nil
	}
	tc := gwTLS.Clone()
	tc.ClientAuth, tc.ClientCAs = tls.NoClientCert, nil
	tc.NextProtos = []string{"postgresql"} // libpq 17+ offers this ALPN
	return tc
}

// listenPG starts the PostgreSQL gateway on cfg.PGAddr, if set, writes
// its address to the data directory file postgres.url and prints it. It
// offers TLS with tc (see pgTLS). The returned server's Close ends every
// session; stop removes postgres.url. With no PGAddr, the server is an
// idle one.
func listenPG(cfg Config, in *instance, rec *usage.Recorder, tc *tls.Config, stdout io.Writer, errc chan<- error) (*pgwire.Server, func(), error) {
	pcfg := pgwire.Config{Authority: in.a, Usage: rec, Log: cfg.Log, TLS: tc}
	srv, err := pgwire.New(pcfg)
	if err != nil || cfg.PGAddr == "" {
		return srv, func() {}, err
	}
	ln, err := net.Listen("tcp", cfg.PGAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to listen on %s: %w", cfg.PGAddr, err)
	}
	url := "postgres://" + ln.Addr().String()
	path := filepath.Join(cfg.DataDir, pgFile)
	if err := os.WriteFile(path, []byte(url+"\n"), 0o600); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("failed to write %s: %w", path, err)
	}
	tlsNote := "TLS offered"
	if pcfg.TLS == nil {
		tlsNote = "no TLS: loopback clients only"
	}
	fmt.Fprintf(stdout, "latchkey: postgres gateway listening on %s (%s)\n", url, tlsNote)
	go func() { errc <- srv.Serve(ln) }()
	return srv, func() { os.Remove(path) }, nil
}
