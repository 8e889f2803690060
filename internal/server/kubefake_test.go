package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// fakeKube is a fake Kubernetes API server on 127.0.0.1 (TLS): enough of
// discovery for kubectl (v1.20 to v1.32: legacy discovery; the OpenAPI
// endpoints answer 404, which kubectl copes with), and get, list and
// watch of pods in every namespace, as a Table when kubectl asks for one.
// Every other path is a 404 Status. It records the headers of every
// request; a watch stays open, sending nothing, until the client goes
// away, and watching receives the request's path when one starts.
type fakeKube struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests []fakeRequest
	watching chan string
	// streams receives the path of each log follow or exec stream once it
	// is open, and ended once it has ended on the server's side.
	streams, ended chan string
}

// fakeRequest is what fakeKube received.
type fakeRequest struct {
	method, uri string
	header      http.Header
}

func newFakeKube(t *testing.T) *fakeKube {
	f := &fakeKube{watching: make(chan string, 8), streams: make(chan string, 8), ended: make(chan string, 8)}
	f.srv = httptest.NewTLSServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// seen returns a copy of the requests received so far.
func (f *fakeKube) seen() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

const (
	fakeAPIVersions = `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:6443"}]}`
	fakeGroups      = `{"kind":"APIGroupList","apiVersion":"v1","groups":[]}`
	fakeVersion     = `{"major":"1","minor":"32","gitVersion":"v1.32.0","gitCommit":"0","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.23","compiler":"gc","platform":"linux/amd64"}`
	fakeResources   = `{"kind":"APIResourceList","groupVersion":"v1","resources":[` +
		`{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["po"],"categories":["all"]},` +
		`{"name":"pods/log","singularName":"","namespaced":true,"kind":"Pod","verbs":["get"]},` +
		`{"name":"secrets","singularName":"secret","namespaced":true,"kind":"Secret","verbs":["create","delete","deletecollection","get","list","patch","update","watch"]}]}`
	fakePodMeta = `{"name":"web-1","namespace":"%s","uid":"0b1c","resourceVersion":"10","creationTimestamp":"2026-01-01T00:00:00Z"}`
)

func (f *fakeKube) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, fakeRequest{r.Method, r.RequestURI, r.Header.Clone()})
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/version":
		io.WriteString(w, fakeVersion)
	case r.URL.Path == "/api":
		io.WriteString(w, fakeAPIVersions)
	case r.URL.Path == "/apis":
		io.WriteString(w, fakeGroups)
	case r.URL.Path == "/api/v1":
		io.WriteString(w, fakeResources)
	case r.Method == "GET" && len(segs) == 5 && segs[0] == "api" && segs[2] == "namespaces" && segs[4] == "pods":
		f.pods(w, r, segs[3])
	case r.Method == "GET" && len(segs) == 6 && segs[0] == "api" && segs[4] == "pods" && segs[5] == "web-1":
		fmt.Fprintf(w, `{"kind":"Pod","apiVersion":"v1","metadata":%s,"spec":{"containers":[{"name":"web","image":"web"}]},"status":{"phase":"Running"}}`,
			fmt.Sprintf(fakePodMeta, segs[3]))
	case r.Method == "GET" && len(segs) == 7 && segs[0] == "api" && segs[4] == "pods" && segs[5] == "web-1" && segs[6] == "log":
		f.log(w, r)
	case len(segs) == 7 && segs[0] == "api" && segs[4] == "pods" && segs[5] == "web-1" && segs[6] == "exec":
		f.exec(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}`)
	}
}

// pods lists the one pod of namespace ns, or watches the namespace's pods.
func (f *fakeKube) pods(w http.ResponseWriter, r *http.Request, ns string) {
	if q := r.URL.Query().Get("watch"); q == "true" || q == "1" {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		f.watching <- r.URL.Path
		<-r.Context().Done()
		return
	}
	meta := fmt.Sprintf(fakePodMeta, ns)
	if strings.Contains(r.Header.Get("Accept"), "as=Table") {
		fmt.Fprintf(w, `{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"10"},`+
			`"columnDefinitions":[{"name":"Name","type":"string","format":"name","description":"Name","priority":0},`+
			`{"name":"Status","type":"string","format":"","description":"Status","priority":0}],`+
			`"rows":[{"cells":["web-1","Running"],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":%s}}]}`, meta)
		return
	}
	fmt.Fprintf(w, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"10"},"items":[{"metadata":%s,"spec":{"containers":[{"name":"web","image":"web"}]},"status":{"phase":"Running"}}]}`, meta)
}

// log serves a container's log: one line, then, with follow=true, nothing
// more until the client goes away.
func (f *fakeKube) log(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "log line 1\n")
	if r.URL.Query().Get("follow") != "true" {
		return
	}
	http.NewResponseController(w).Flush()
	f.streams <- r.URL.Path
	<-r.Context().Done()
	f.ended <- r.URL.Path
}

// exec serves kubectl exec over WebSocket (the channel.k8s.io protocols
// v4 and v5 kubectl 1.30 and later speak: binary messages whose first
// byte is the channel, 1 stdout, 3 the final Status). "echo ARGS" writes
// ARGS; any other command writes "ready" and runs until the client goes.
func (f *fakeKube) exec(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"v5.channel.k8s.io", "v4.channel.k8s.io"}})
	if err != nil {
		return // Accept answered (a SPDY client gets 400 and falls back or fails)
	}
	defer c.CloseNow()
	ctx := context.Background()
	cmd := r.URL.Query()["command"]
	if len(cmd) > 0 && cmd[0] == "echo" {
		c.Write(ctx, websocket.MessageBinary, append([]byte{1}, strings.Join(cmd[1:], " ")+"\n"...))
		c.Write(ctx, websocket.MessageBinary, append([]byte{3}, `{"metadata":{},"status":"Success"}`...))
		c.Close(websocket.StatusNormalClosure, "")
		return
	}
	c.Write(ctx, websocket.MessageBinary, append([]byte{1}, "ready\n"...))
	f.streams <- r.URL.Path
	for {
		if _, _, err := c.Read(ctx); err != nil {
			break
		}
	}
	f.ended <- r.URL.Path
}

// checkJSON fails unless every canned body is valid JSON (a typo would
// make kubectl fail for the wrong reason).
func TestFakeKubeBodies(t *testing.T) {
	for _, b := range []string{fakeAPIVersions, fakeGroups, fakeVersion, fakeResources, fmt.Sprintf(fakePodMeta, "dev")} {
		if !json.Valid([]byte(b)) {
			t.Errorf("invalid JSON: %s", b)
		}
	}
}
