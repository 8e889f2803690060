package cli

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readmeBlock returns the fenced block of README.md in language lang
// that contains marker.
func readmeBlock(t *testing.T, lang, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range strings.Split(string(b), "```"+lang+"\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		if strings.Contains(block, marker) {
			return block
		}
	}
	t.Fatalf("README.md has no %s block with %q", lang, marker)
	return ""
}

// TestReadmeProofScript runs the README's DPoP proof script and curl
// command line against the independent verifier of call_test.go.
func TestReadmeProofScript(t *testing.T) {
	for _, tool := range []string{"python3", "openssl", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	t.Setenv(envContractorToken, testToken)
	dir := t.TempDir()
	script := filepath.Join(dir, "dpop-proof.py")
	os.WriteFile(script, []byte(readmeBlock(t, "python", "dpop-proof.py KEY METHOD URL")), 0o700)
	key, jkt := newKey(t, "ES256")
	os.Rename(key, filepath.Join(dir, "latchkey-dpop.key"))
	key = filepath.Join(dir, "latchkey-dpop.key")
	proofFor := func(url string, nonce ...string) string {
		t.Helper()
		out, err := exec.Command("python3", append([]string{script, key, "GET", url}, nonce...)...).Output()
		if err != nil {
			t.Fatalf("dpop-proof.py: %v", err)
		}
		return strings.TrimSpace(string(out))
	}

	// A proof, then a new one with the nonce the server asks for.
	srv := newProofServer(t, "n-42")
	url := srv.URL + "/billing/v1/invoices?limit=2"
	send := func(p string) *http.Response {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "DPoP "+testToken)
		req.Header.Set("DPoP", p)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := send(proofFor(url))
	if resp.StatusCode != 401 || resp.Header.Get("DPoP-Nonce") != "n-42" {
		t.Fatalf("first request: %s", resp.Status)
	}
	if resp := send(proofFor(url, "n-42")); resp.StatusCode != 200 {
		errs, _, _, _ := srv.seen()
		t.Fatalf("request with the nonce: %s %v", resp.Status, errs)
	}
	errs, jkts, _, _ := srv.seen()
	if len(errs) != 0 || len(jkts) != 2 || jkts[0] != jkt || jkts[1] != jkt {
		t.Errorf("errors %v, proof keys %v: want none, the key new thumbprint %s", errs, jkts, jkt)
	}

	// The curl command line, as the README shows it.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skipf("no curl: %v", err)
	}
	plain := newProofServer(t, "")
	sh := strings.ReplaceAll(readmeBlock(t, "sh", "curl -sS -H @-"), "https://gateway.example.com", plain.URL)
	cmd := exec.Command("sh", "-e", "-c", sh)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if errs, _, _, _ := plain.seen(); err != nil || string(out) != "ok GET " || len(errs) != 0 {
		t.Errorf("README curl: %v %q, verifier errors %v", err, out, errs)
	}
}
