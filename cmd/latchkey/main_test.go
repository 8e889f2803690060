package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	_ "modernc.org/sqlite"

	"latchkey/internal/store/sqlite/sqlitetest"
)

// TestMain makes the test binary double as the latchkey command, so that
// the transcripts run the real main: "exec latchkey ..." in a script.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"latchkey": main})
}

// TestScripts runs the CLI transcripts in testdata/script. Each one drives
// the real binary against a real server started in the background.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			// Nothing of the developer's environment leaks into a script.
			env.Setenv("LATCHKEY_ADDR", "")
			env.Setenv("LATCHKEY_TOKEN", "")
			// Under -race, each latchkey process would otherwise sleep
			// 1 s at exit; races are still reported (exit status 66).
			gorace := os.Getenv("GORACE")
			if gorace == "" {
				gorace = "atexit_sleep_ms=0"
			}
			env.Setenv("GORACE", gorace)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitserve":   cmdWaitserve,
			"sigterm":     cmdSigterm,
			"gencert":     cmdGencert,
			"envfile":     cmdEnvfile,
			"envre":       cmdEnvre,
			"nosecret":    cmdNosecret,
			"status":      cmdStatus,
			"sqlexec":     cmdSqlexec,
			"cpdir":       cmdCpdir,
			"flipleaf":    cmdFlipleaf,
			"upstream":    cmdUpstream,
			"waitgateway": cmdWaitgateway,
			"gwcall":      cmdGwcall,
			"clientcert":  cmdClientcert,
			"gwtls":       cmdGwtls,
			"webhookrecv": cmdWebhookrecv,
			"waitlines":   cmdWaitlines,
			"waitout":     cmdWaitout,
			"leakkey":     cmdLeakkey,
			"leakpost":    cmdLeakpost,
			"pgsetup":     cmdPgsetup,
			"waitpg":      cmdWaitpg,
		},
		Condition: func(cond string) (bool, error) {
			if cond == "pg" {
				return pgCondition()
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// cmdWaitserve: waitserve DIR
//
// waits up to 10 s for DIR/admin.url, written by "latchkey serve" once it
// listens, and sets LATCHKEY_ADDR to the URL it holds.
func cmdWaitserve(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitserve DIR")
	}
	path := filepath.Join(ts.MkAbs(args[0]), "admin.url")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if url := strings.TrimSpace(string(b)); err == nil && strings.HasSuffix(string(b), "\n") && url != "" {
			ts.Setenv("LATCHKEY_ADDR", url)
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within 10s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cmdStatus: status N PROGRAM [ARGS...]
//
// runs PROGRAM like exec and fails unless its exit status is exactly N;
// stdout and stderr are then those of PROGRAM.
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}

// cmdEnvfile: envfile NAME FILE
//
// sets the variable NAME to the content of FILE ("stdout" and "stderr"
// mean those of the last exec) with surrounding white space trimmed. It
// fails if that is empty.
func cmdEnvfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile NAME FILE")
	}
	v := strings.TrimSpace(ts.ReadFile(args[1]))
	if v == "" {
		ts.Fatalf("%s is empty", args[1])
	}
	ts.Setenv(args[0], v)
}

// cmdEnvre: envre NAME FILE REGEXP
//
// sets the variable NAME to the first submatch of REGEXP (multi-line mode,
// as in stdout) in FILE ("stdout" and "stderr" mean those of the last
// exec). It fails if REGEXP does not match.
func cmdEnvre(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: envre NAME FILE REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[2])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile(args[1]))
	if len(m) < 2 {
		ts.Fatalf("%s does not match %s (with a submatch)", args[1], args[2])
	}
	ts.Setenv(args[0], m[1])
}

// tokenText matches the text of a latchkey token (package token's Pattern).
var tokenText = regexp.MustCompile(`\blka?_[0-9A-Za-z]{50}\b`)

// secret is one byte string nosecret looks for, and what to call it in a
// failure (never the secret itself).
type secret struct {
	name, text string
}

// cmdNosecret: nosecret DIR FILE...
//
// fails if any file under DIR (recursively, whatever its kind: SQLite
// database, -wal and -shm files, keys, logs) contains, as plain bytes, any
// secret listed in the FILEs. The secrets of a FILE are the latchkey token
// texts in it, wherever they appear (a bare token, JSON output), or if it
// holds none, each of its non-empty lines (a credential value). For a
// token, both its whole text and its secret part alone are looked for.
// Each FILE must yield a secret, so that the check is never vacuous.
// "! nosecret" succeeds only if some secret is found.
func cmdNosecret(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: nosecret DIR FILE...")
	}
	var secrets []secret
	for _, f := range args[1:] {
		found := secretsIn(f, ts.ReadFile(f))
		if len(found) == 0 {
			ts.Fatalf("%s lists no secret", f)
		}
		secrets = append(secrets, found...)
	}
	var hits []string
	err := filepath.WalkDir(ts.MkAbs(args[0]), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s.text)) {
				hits = append(hits, s.name+" in "+path)
			}
		}
		return nil
	})
	ts.Check(err)
	switch {
	case len(hits) > 0 && !neg:
		ts.Fatalf("secrets in plain text: %s", strings.Join(hits, "; "))
	case len(hits) == 0 && neg:
		ts.Fatalf("no secret found under %s", args[0])
	}
	ts.Logf("checked %d secrets", len(secrets))
}

// secretsIn returns the secrets listed in the content of file f: see
// cmdNosecret. A token's secret part is the 32 characters after its prefix
// and 12-character id, before its 6-character checksum (package token).
func secretsIn(f, content string) []secret {
	var out []secret
	for i, t := range tokenText.FindAllString(content, -1) {
		_, body, _ := strings.Cut(t, "_")
		name := fmt.Sprintf("token %d of %s", i+1, f)
		out = append(out, secret{name, t}, secret{"secret part of " + name, body[12 : 12+32]})
	}
	if len(out) > 0 {
		return out
	}
	for i, line := range strings.Split(content, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, secret{fmt.Sprintf("line %d of %s", i+1, f), line})
		}
	}
	return out
}

// TestSecretsIn checks what nosecret looks for: whole token texts and
// their secret parts, or else each line.
func TestSecretsIn(t *testing.T) {
	const tok = "lk_0123456789ABabcdefghijklmnopqrstuvwxyzABCDEF0aB3dE"
	got := secretsIn("f", `{"id": "0123456789AB", "token": "`+tok+`"}`)
	want := []secret{
		{"token 1 of f", tok},
		{"secret part of token 1 of f", "abcdefghijklmnopqrstuvwxyzABCDEF"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("secretsIn(json) = %q, want %q", got, want)
	}
	got = secretsIn("c", "Bearer x-1\n\n  y-2  \n")
	want = []secret{{"line 1 of c", "Bearer x-1"}, {"line 3 of c", "y-2"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("secretsIn(lines) = %q, want %q", got, want)
	}
}

// cmdSigterm sends SIGTERM to the process whose pid is in FILE (testscript's
// own kill knows only INT and KILL).
func cmdSigterm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sigterm PIDFILE")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(ts.ReadFile(args[0])))
	if err != nil {
		ts.Fatalf("bad pid file: %v", err)
	}
	ts.Check(syscall.Kill(pid, syscall.SIGTERM))
}

// cmdGencert: gencert DIR
//
// writes a self-signed certificate for 127.0.0.1 to DIR/cert.pem and its
// key to DIR/key.pem.
func cmdGencert(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: gencert DIR")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "latchkey test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	ts.Check(err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	ts.Check(err)
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	ts.Check(os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	ts.Check(os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
}

// cmdSqlexec: sqlexec DBFILE SQL...
//
// runs each SQL statement, in order, on the SQLite database DBFILE, as an
// attacker with write access to the file would, with views of the audit
// log as one row per record (audit_records: idx, leaf) and per stored
// hash (audit_hashes: idx, hash): see sqlitetest.OpenRaw.
func cmdSqlexec(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: sqlexec DBFILE SQL...")
	}
	db, err := sqlitetest.OpenRaw(context.Background(), ts.MkAbs(args[0]))
	ts.Check(err)
	defer db.Close()
	for _, q := range args[1:] {
		res, err := db.Exec(q)
		if err != nil {
			ts.Fatalf("%s: %v", q, err)
		}
		n, _ := res.RowsAffected()
		ts.Logf("%d rows affected", n)
	}
}

// cmdCpdir: cpdir SRC DST
//
// copies the directory tree SRC to DST (which must not exist), keeping
// file modes.
func cmdCpdir(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: cpdir SRC DST")
	}
	src, dst := ts.MkAbs(args[0]), ts.MkAbs(args[1])
	if _, err := os.Stat(dst); err == nil {
		ts.Fatalf("%s exists", dst)
	}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, fi.Mode().Perm())
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, fi.Mode().Perm())
		}
		return nil
	})
	ts.Check(err)
}

// cmdFlipleaf: flipleaf EXPORT INDEX OFFSET
//
// flips the lowest bit of byte OFFSET (from the end if negative: -1 is
// the last byte) of the leaf of record INDEX in the JSON Lines audit
// export EXPORT, and writes the line back in the same form.
func cmdFlipleaf(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: flipleaf EXPORT INDEX OFFSET")
	}
	index, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	off, err := strconv.Atoi(args[2])
	ts.Check(err)
	path := ts.MkAbs(args[0])
	lines := strings.SplitAfter(ts.ReadFile(args[0]), "\n")
	for i, l := range lines {
		var rec struct {
			Index int64  `json:"index"`
			Leaf  []byte `json:"leaf"`
		}
		if l == "" || json.Unmarshal([]byte(l), &rec) != nil || rec.Index != index {
			continue
		}
		if off < 0 {
			off += len(rec.Leaf)
		}
		if off < 0 || off >= len(rec.Leaf) {
			ts.Fatalf("offset %s out of a %d-byte leaf", args[2], len(rec.Leaf))
		}
		rec.Leaf[off] ^= 1
		b, err := json.Marshal(rec)
		ts.Check(err)
		lines[i] = string(b) + "\n"
		ts.Check(os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644))
		return
	}
	ts.Fatalf("no record %d in %s", index, args[0])
}
