package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdClientcert: clientcert DIR
//
// writes a fresh self-signed ECDSA P-256 client certificate to
// DIR/cert.pem and its key to DIR/key.pem (as a contractor would make them
// with openssl), and prints the certificate's x5t#S256 thumbprint
// (base64url SHA-256 of its DER, no padding) and a newline.
func cmdClientcert(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: clientcert DIR")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	dir := ts.MkAbs(args[0])
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: filepath.Base(dir)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	ts.Check(err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	ts.Check(err)
	ts.Check(os.MkdirAll(dir, 0o700))
	ts.Check(os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	ts.Check(os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	sum := sha256.Sum256(der)
	fmt.Fprintln(ts.Stdout(), base64.RawURLEncoding.EncodeToString(sum[:]))
}

// cmdGwtls: gwtls CAFILE CERTDIR|- METHOD PATH [HEADER: VALUE ...]
//
// is gwcall over HTTPS: it trusts only the PEM certificates of CAFILE
// (e.g. DATA/gateway-dev.crt) and presents the client certificate
// CERTDIR/cert.pem with CERTDIR/key.pem, or none for "-". The client
// offers its certificate whatever CAs the server names.
func cmdGwtls(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 4 {
		ts.Fatalf("usage: gwtls CAFILE CERTDIR|- METHOD PATH [HEADER: VALUE ...]")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ts.ReadFile(args[0]))) {
		ts.Fatalf("%s holds no certificate", args[0])
	}
	tc := &tls.Config{RootCAs: pool}
	if args[1] != "-" {
		dir := ts.MkAbs(args[1])
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
		ts.Check(err)
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	gwsend(ts, &http.Client{Transport: tr, Timeout: 10 * time.Second}, args[2:])
}
