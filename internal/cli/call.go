package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"latchkey/internal/proof"
)

// callOpts are the flags of "call".
type callOpts struct {
	headers   []string
	data      string
	dataFile  string
	tokenFile string
	keyFile   string
	certFile  string
	certKey   string
	caCert    string
	pin       string
	include   bool
}

func callCmd(g *globals) *cobra.Command {
	var o callOpts
	c := &cobra.Command{
		Use:   "call METHOD URL [-H 'Name: value' ...] [-d DATA | --data-file FILE] [--token-file FILE] [--key FILE] [--cert FILE --cert-key FILE] [--cacert FILE | --insecure-dev-pin SHA256] [-i]",
		Short: "Contractor side: call the gateway with your token, signing a DPoP proof per request",
		Long: `Send one HTTP request to the latchkey gateway with your contractor token, like
curl, and print the response body on stdout (-i: the status line and headers
first). Exit status 0 for a 2xx answer, 1 otherwise, with the gateway's
refusal, if any, as one line on stderr.

The token is read from $` + envContractorToken + ` or from --token-file FILE, never
from the command line, which shell history and the process list would keep.

With --key FILE (a key made by "latchkey key new") the token is sent as
"Authorization: DPoP TOKEN" with a fresh DPoP proof (RFC 9449) signed by
that key: new jti, iat now, htm and htu of this request, ath of the token.
When the gateway asks for a nonce (401 with WWW-Authenticate: DPoP
error="use_dpop_nonce" and a DPoP-Nonce header) the request is sent once
more with a proof carrying that nonce. Without --key the token is sent as
"Authorization: Bearer TOKEN".

With --cert and --cert-key the client presents that certificate, for a
token bound with --bind mtls.

Redirects are printed, never followed: a proof is bound to one URL. Plain
http is allowed only to a loopback address; anything else must be https,
verified against the system roots, --cacert, or for a development gateway
with a self-signed certificate --insecure-dev-pin, the SHA-256 of its
certificate (as "latchkey key thumbprint --cert" prints it, or in hex).`,
		Args: cobra.ExactArgs(2),
	}
	f := c.Flags()
	f.StringArrayVarP(&o.headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	f.StringVarP(&o.data, "data", "d", "", "request body")
	f.StringVar(&o.dataFile, "data-file", "", "read the request body from FILE (- for stdin)")
	f.StringVar(&o.tokenFile, "token-file", "", "read the contractor token from FILE (default $"+envContractorToken+")")
	f.StringVar(&o.keyFile, "key", "", "DPoP key file: send a DPoP-bound token with a proof")
	f.StringVar(&o.certFile, "cert", "", "PEM client certificate to present (with --cert-key)")
	f.StringVar(&o.certKey, "cert-key", "", "PEM private key of --cert")
	f.StringVar(&o.caCert, "cacert", "", "PEM CA certificate to trust for the gateway, besides the system roots")
	f.StringVar(&o.pin, "insecure-dev-pin", "", "trust only the gateway certificate with this SHA-256 (development only)")
	f.BoolVarP(&o.include, "include", "i", false, "print the status line and response headers before the body")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if g.token != "" || g.addr != "" || g.caCert != "" {
			return usagef("call does not take --token, --addr or --ca-cert: the token comes from $%s or --token-file, the CA from --cacert", envContractorToken)
		}
		return runCall(cmd, o, args[0], args[1])
	}
	return c
}

// callRequest is a request "call" is ready to send, attempt after
// attempt.
type callRequest struct {
	method string
	url    *url.URL
	header http.Header
	body   func() (io.ReadCloser, int64, error)
	token  string
	key    *proof.Key // nil: bearer
}

func runCall(cmd *cobra.Command, o callOpts, method, rawURL string) error {
	req, err := o.request(method, rawURL, cmd.InOrStdin())
	if err != nil {
		return err
	}
	hc, err := o.client()
	if err != nil {
		return err
	}
	resp, err := req.do(cmd.Context(), hc)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return printResponse(cmd.OutOrStdout(), resp, o.include)
}

// request checks everything "call" was given before any connection.
func (o callOpts) request(method, rawURL string, stdin io.Reader) (*callRequest, error) {
	r := &callRequest{method: strings.ToUpper(method), header: http.Header{}}
	if !validFieldName(r.method) {
		return nil, usagef("invalid METHOD %q", trunc(method))
	}
	u, err := targetURL(rawURL)
	if err != nil {
		return nil, err
	}
	r.url = u
	for _, h := range o.headers {
		if err := addHeader(r.header, h); err != nil {
			return nil, err
		}
	}
	if r.body, err = o.bodySource(stdin); err != nil {
		return nil, err
	}
	if (o.certFile == "") != (o.certKey == "") {
		return nil, usagef("--cert and --cert-key go together")
	}
	if o.caCert != "" && o.pin != "" {
		return nil, usagef("--cacert and --insecure-dev-pin exclude each other")
	}
	if r.token, err = o.readToken(stdin); err != nil {
		return nil, err
	}
	if o.keyFile != "" {
		if r.key, err = loadKey(o.keyFile); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// targetURL parses and checks the URL of "call".
func targetURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, usagef("invalid URL %q: want http(s)://HOST[:PORT]/PATH", trunc(raw))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return nil, usagef("refusing to send a token over plain http to %s: use https", u.Host)
		}
	default:
		return nil, usagef("invalid URL %q: want an http or https URL", trunc(raw))
	}
	if u.User != nil {
		return nil, usagef("invalid URL: credentials in the URL are not sent; the token comes from $%s", envContractorToken)
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reservedHeaders are set by "call" itself or by the HTTP client.
var reservedHeaders = []string{"Authorization", "Dpop", "Content-Length", "Transfer-Encoding", "Connection"}

// addHeader adds one -H 'Name: value' to h; a Host header sets the
// request's host.
func addHeader(h http.Header, s string) error {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || !validFieldName(name) {
		return usagef("-H %q: want 'Name: value' with an HTTP header name before the colon", trunc(s))
	}
	for _, r := range value {
		if (r < ' ' && r != '\t') || r == 0x7f {
			return usagef("-H %s: the value contains a control character", name)
		}
	}
	name = http.CanonicalHeaderKey(name)
	if slices.Contains(reservedHeaders, name) {
		return usagef("-H %s: call sets this header itself", name)
	}
	h.Add(name, value)
	return nil
}

// bodySource returns how to (re)open the request body: it may be sent
// twice, when the gateway asks for a DPoP nonce. Standard input is read
// into memory for that reason.
func (o callOpts) bodySource(stdin io.Reader) (func() (io.ReadCloser, int64, error), error) {
	mem := func(b []byte) func() (io.ReadCloser, int64, error) {
		return func() (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
		}
	}
	switch {
	case o.data != "" && o.dataFile != "":
		return nil, usagef("-d and --data-file exclude each other")
	case o.dataFile == "-":
		if o.tokenFile == "-" {
			return nil, usagef("--data-file - and --token-file - cannot both read standard input")
		}
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("--data-file -: %w", err)
		}
		return mem(b), nil
	case o.dataFile != "":
		fi, err := os.Stat(o.dataFile)
		if err != nil {
			return nil, usagef("--data-file: %v", err)
		}
		if !fi.Mode().IsRegular() {
			// A pipe or device can be read only once.
			b, err := os.ReadFile(o.dataFile)
			if err != nil {
				return nil, fmt.Errorf("--data-file: %w", err)
			}
			return mem(b), nil
		}
		return func() (io.ReadCloser, int64, error) {
			f, err := os.Open(o.dataFile)
			if err != nil {
				return nil, 0, fmt.Errorf("--data-file: %w", err)
			}
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("--data-file: %w", err)
			}
			return f, fi.Size(), nil
		}, nil
	}
	return mem([]byte(o.data)), nil
}

// readToken returns the contractor token from --token-file or the
// environment. It is checked for characters a header cannot carry, never
// echoed.
func (o callOpts) readToken(stdin io.Reader) (string, error) {
	var tok string
	switch {
	case o.tokenFile == "-":
		b, err := io.ReadAll(io.LimitReader(stdin, 4096))
		if err != nil {
			return "", fmt.Errorf("--token-file -: %w", err)
		}
		tok = string(b)
	case o.tokenFile != "":
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return "", usagef("--token-file: %v", err)
		}
		tok = string(b)
	default:
		tok = os.Getenv(envContractorToken)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", usagef("no token: set %s or pass --token-file FILE", envContractorToken)
	}
	for i := range len(tok) {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return "", usagef("the token contains white space or a character a header cannot carry")
		}
	}
	return tok, nil
}

// client returns the HTTP client of "call": TLS per the flags, no
// redirects followed, no overall timeout (the body is streamed).
func (o callOpts) client() (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caCert != "" {
		b, err := os.ReadFile(o.caCert)
		if err != nil {
			return nil, usagef("--cacert: %v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, usagef("--cacert %s: no PEM certificate in it", o.caCert)
		}
		tc.RootCAs = pool
	}
	if o.pin != "" {
		pin, err := parsePin(o.pin)
		if err != nil {
			return nil, err
		}
		// The pin replaces chain and name verification: only the
		// certificate with this exact SHA-256 is accepted.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
				return errors.New("server certificate does not match --insecure-dev-pin")
			}
			return nil
		}
	}
	if o.certFile != "" {
		keyPEM, err := readPrivate(o.certKey)
		if err != nil {
			return nil, fmt.Errorf("--cert-key: %w", err)
		}
		certPEM, err := os.ReadFile(o.certFile)
		if err != nil {
			return nil, fmt.Errorf("--cert: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("--cert %s: %w", o.certFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.TLSHandshakeTimeout = 30 * time.Second
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// parsePin reads a SHA-256 certificate pin: base64url (as "key thumbprint
// --cert" prints it) or hex.
func parsePin(s string) ([]byte, error) {
	if b, err := hex.DecodeString(strings.ReplaceAll(s, ":", "")); err == nil && len(b) == sha256.Size {
		return b, nil
	}
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil && len(b) == sha256.Size {
		return b, nil
	}
	return nil, usagef("--insecure-dev-pin: want the SHA-256 of the gateway certificate, base64url or hex")
}

// do sends r, signing a new proof for each attempt, and retries once with
// the server's nonce when it asks for one.
func (r *callRequest) do(ctx context.Context, hc *http.Client) (*http.Response, error) {
	resp, err := r.send(ctx, hc, "")
	if err != nil || r.key == nil {
		return resp, err
	}
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != http.StatusUnauthorized || nonce == "" || dpopChallenge(resp.Header)["error"] != "use_dpop_nonce" {
		return resp, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return r.send(ctx, hc, nonce)
}

// send sends r once.
func (r *callRequest) send(ctx context.Context, hc *http.Client, nonce string) (*http.Response, error) {
	body, n, err := r.body()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url.String(), body)
	if err != nil {
		body.Close()
		return nil, usagef("invalid request: %v", err)
	}
	req.ContentLength = n
	if n == 0 {
		req.Body = http.NoBody
		body.Close()
	}
	req.Header = r.header.Clone()
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
		req.Header.Del("Host")
	}
	if r.key == nil {
		req.Header.Set("Authorization", "Bearer "+r.token)
	} else {
		p, err := r.key.Sign(proof.Request{Method: r.method, URL: r.url, Token: r.token, Nonce: nonce, Time: time.Now()})
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "DPoP "+r.token)
		req.Header.Set("DPoP", p)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.url.Redacted(), unwrapURLError(err))
	}
	return resp, nil
}

// unwrapURLError drops the url.Error wrapper, whose text repeats the
// method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// dpopChallenge returns the parameters of the DPoP challenge in the
// WWW-Authenticate headers of h, or nil.
func dpopChallenge(h http.Header) map[string]string {
	for _, v := range h.Values("WWW-Authenticate") {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
		if strings.EqualFold(scheme, "DPoP") {
			return authParams(rest)
		}
	}
	return nil
}

// authParams parses auth-param list `a="x", b=y` (RFC 9110 section 11.2).
func authParams(s string) map[string]string {
	m := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimLeft(s, ", \t") {
		name, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		name = strings.ToLower(strings.TrimSpace(name))
		rest = strings.TrimLeft(rest, " \t")
		var val strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				val.WriteByte(rest[i])
			}
			s = rest[min(i+1, len(rest)):]
		} else {
			end := strings.IndexAny(rest, ", \t")
			if end < 0 {
				end = len(rest)
			}
			val.WriteString(rest[:end])
			s = rest[end:]
		}
		m[name] = val.String()
	}
	return m
}

// printResponse streams resp to w, after its status line and headers
// with include. A status other than 2xx is returned as an error, with
// the gateway's reason when the body is its JSON refusal.
func printResponse(w io.Writer, resp *http.Response, include bool) error {
	if include {
		if err := writeHead(w, resp); err != nil {
			return err
		}
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	var head capped
	body := io.Reader(resp.Body)
	if !ok {
		body = io.TeeReader(resp.Body, &head)
	}
	if _, err := io.Copy(w, body); err != nil {
		return fmt.Errorf("response body: %w", err)
	}
	if ok {
		return nil
	}
	return statusError(resp, head.Bytes())
}

// writeHead writes the status line and the headers, sorted by name.
func writeHead(w io.Writer, resp *http.Response) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\r\n", resp.Proto, resp.Status)
	names := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// capped keeps the first 64 KiB written to it: enough for a refusal.
type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := 64<<10 - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// statusError describes a response other than 2xx in one line.
func statusError(resp *http.Response, body []byte) error {
	msg := "HTTP " + resp.Status
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
		return fmt.Errorf("%s: redirect to %s not followed (a proof is bound to one URL)", msg, loc)
	}
	var denial struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &denial) == nil && denial.Error != "" {
		if denial.Message == "" {
			denial.Message = denial.Error
		}
		return fmt.Errorf("%s: %s (%s)", msg, denial.Message, denial.Error)
	}
	if ch := dpopChallenge(resp.Header); ch["error"] != "" {
		if d := ch["error_description"]; d != "" {
			return fmt.Errorf("%s: %s (%s)", msg, d, ch["error"])
		}
		return fmt.Errorf("%s (%s)", msg, ch["error"])
	}
	return errors.New(msg)
}
