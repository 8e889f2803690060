package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Files of the gateway's development certificate (Config.GatewayTLSDev)
// in the data directory, both mode 0600: the certificate (PEM
// "CERTIFICATE") and its ECDSA P-256 key (PEM "PRIVATE KEY", PKCS #8).
const (
	devCertFile = "gateway-dev.crt"
	devKeyFile  = "gateway-dev.key"
)

// Lifetime of a development certificate, and how long before its end
// serve replaces it with a new one.
const (
	devCertLifetime = 397 * 24 * time.Hour
	devCertRenew    = 30 * 24 * time.Hour
)

// gatewayTLS returns the gateway listener's TLS configuration, without a
// certificate yet if cfg.GatewayTLSDev is set (see devCertificate), or nil
// for plain HTTP (on loopback only, as listenTLS enforces).
//
// The gateway requests a client certificate on every TLS handshake, for
// certificate-bound tokens (RFC 8705), and never requires one. Without
// cfg.GatewayClientCA any certificate is accepted at the handshake,
// self-signed ones included (RFC 8705 section 2.2, self-signed certificate
// binding: the token names the certificate by its thumbprint, and the
// handshake proves that the client holds its key). With it, a client that
// presents a certificate must present one chaining to those CAs (PKI
// binding), or the handshake fails; clients without one still connect
// (bearer tokens).
func gatewayTLS(cfg Config) (*tls.Config, error) {
	if cfg.GatewayTLSDev && (cfg.GatewayTLSCert != "" || cfg.GatewayTLSKey != "") {
		return nil, errors.New("give --gateway-tls-dev or --gateway-tls-cert and --gateway-tls-key, not both")
	}
	tc := &tls.Config{}
	if !cfg.GatewayTLSDev {
		var err error
		if tc, err = listenTLS("gateway", cfg.GatewayAddr, cfg.GatewayTLSCert, cfg.GatewayTLSKey); err != nil {
			return nil, err
		}
	}
	if tc == nil {
		if cfg.GatewayClientCA != "" {
			return nil, errors.New("--gateway-client-ca needs TLS on the gateway: give --gateway-tls-cert and --gateway-tls-key, or --gateway-tls-dev")
		}
		return nil, nil
	}
	tc.MinVersion = tls.VersionTLS12
	tc.ClientAuth = tls.RequestClientCert
	if cfg.GatewayClientCA != "" {
		pool, err := loadCAs(cfg.GatewayClientCA)
		if err != nil {
			return nil, err
		}
		tc.ClientAuth, tc.ClientCAs = tls.VerifyClientCertIfGiven, pool
	}
	return tc, nil
}

// loadCAs reads a PEM file of CA certificates.
func loadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("failed to read the gateway client CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("gateway client CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// devCert is the gateway's development certificate.
type devCert struct {
	cert    tls.Certificate
	path    string // the certificate file, for clients to trust
	created bool   // made by this start, not reused
}

// fingerprint is the SHA-256 of the certificate's DER encoding, in the
// colon-separated upper-case hex of "openssl x509 -fingerprint -sha256".
func (d devCert) fingerprint() string {
	sum := sha256.Sum256(d.cert.Leaf.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// pin is the SHA-256 of the certificate's public key (SPKI), as
// "curl --pinnedpubkey" takes it.
func (d devCert) pin() string {
	sum := sha256.Sum256(d.cert.Leaf.RawSubjectPublicKeyInfo)
	return "sha256//" + base64.StdEncoding.EncodeToString(sum[:])
}

// devCertificate returns the development certificate kept in dataDir,
// creating it if there is none, or if the one there cannot be loaded,
// does not name every host of devHosts(addr), or ends within
// devCertRenew. It is a self-signed ECDSA P-256 certificate for server
// authentication, valid devCertLifetime. A key file that group or others
// can read is refused.
func devCertificate(dataDir, addr string, now time.Time) (devCert, error) {
	d := devCert{path: filepath.Join(dataDir, devCertFile)}
	keyPath := filepath.Join(dataDir, devKeyFile)
	hosts := devHosts(addr)
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return d, fmt.Errorf("%s has mode %04o: it must not be readable by group or others (chmod 600 %s)", keyPath, fi.Mode().Perm(), keyPath)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return d, fmt.Errorf("gateway development key: %w", err)
	}
	if c, err := tls.LoadX509KeyPair(d.path, keyPath); err == nil && reusable(c.Leaf, hosts, now) {
		d.cert = c
		return d, nil
	}
	c, err := newDevCert(hosts, now)
	if err != nil {
		return d, fmt.Errorf("failed to create the gateway development certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return d, err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})); err != nil {
		return d, err
	}
	if err := writeFile(d.path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Leaf.Raw})); err != nil {
		return d, err
	}
	d.cert, d.created = c, true
	return d, nil
}

// reusable reports whether a stored development certificate names every
// host and is not about to end.
func reusable(leaf *x509.Certificate, hosts []string, now time.Time) bool {
	if leaf == nil || now.Before(leaf.NotBefore) || now.Add(devCertRenew).After(leaf.NotAfter) {
		return false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// devHosts are the names a development certificate is for: localhost,
// 127.0.0.1, ::1, and the listen address's host unless it is a wildcard
// (0.0.0.0, ::, empty).
func devHosts(addr string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return hosts
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() {
			return hosts
		}
		host = ip.String()
	}
	host = strings.ToLower(host)
	if slices.Contains(hosts, host) {
		return hosts
	}
	return append(hosts, host)
}

// newDevCert makes a self-signed server certificate for hosts.
func newDevCert(hosts []string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "latchkey gateway (development)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(devCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// writeFile writes b to path (mode 0600) through a temporary file renamed
// into place, so that a crash never leaves half a file.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}

// useDevCert puts the development certificate of cfg.DataDir into tc and
// prints where it is and its fingerprints.
func useDevCert(cfg Config, tc *tls.Config, stdout io.Writer) error {
	if err := checkDir(cfg.DataDir); err != nil {
		return err
	}
	d, err := devCertificate(cfg.DataDir, cfg.GatewayAddr, time.Now())
	if err != nil {
		return err
	}
	tc.Certificates = []tls.Certificate{d.cert}
	how := "reused"
	if d.created {
		how = "created"
	}
	fmt.Fprintf(stdout, "latchkey: gateway development certificate %s (%s, expires %s)\n", d.path, how, d.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "latchkey: gateway certificate SHA-256 fingerprint %s\n", d.fingerprint())
	fmt.Fprintf(stdout, "latchkey: gateway public key pin %s (curl --pinnedpubkey)\n", d.pin())
	return nil
}
