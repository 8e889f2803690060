package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"latchkey/internal/leak"
)

// cmdLeakkey: leakkey KEYDOC PRIVATE KEYID
//
// generates an ECDSA P-256 key pair, as GitHub's secret scanning signs
// with, and writes the key document listing its public key under KEYID
// to KEYDOC and the private key (PKCS #8 PEM) to PRIVATE.
func cmdLeakkey(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: leakkey KEYDOC PRIVATE KEYID")
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	doc, err := leak.Document(args[2], &k.PublicKey)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), doc, 0o600))
	der, err := x509.MarshalPKCS8PrivateKey(k)
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
}

// cmdLeakpost: leakpost PRIVATE KEYID TOKEN...
//
// posts a leak report of the TOKENs, in GitHub's format and signed with
// the key in PRIVATE under KEYID, to $LATCHKEY_ADDR/v1/leaks, and writes
// "STATUS BODY" to stdout.
func cmdLeakpost(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: leakpost PRIVATE KEYID TOKEN...")
	}
	block, _ := pem.Decode([]byte(ts.ReadFile(args[0])))
	if block == nil {
		ts.Fatalf("%s: no PEM block", args[0])
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	ts.Check(err)
	var entries []leak.Entry
	for _, tok := range args[2:] {
		entries = append(entries, leak.Entry{Token: tok, Type: "latchkey_token", URL: "https://github.com/o/r/blob/main/.env", Source: "content"})
	}
	body, err := json.Marshal(entries)
	ts.Check(err)
	sig, err := leak.Sign(priv.(*ecdsa.PrivateKey), body)
	ts.Check(err)
	req, err := http.NewRequest("POST", ts.Getenv("LATCHKEY_ADDR")+"/v1/leaks", bytes.NewReader(body))
	ts.Check(err)
	req.Header.Set("Github-Public-Key-Identifier", args[1])
	req.Header.Set("Github-Public-Key-Signature", sig)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%d %s", resp.StatusCode, reply)
}
