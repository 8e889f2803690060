package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
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
}

// fakeRequest is what fakeKube received.
type fakeRequest struct {
	method, uri string
	header      http.Header
}

func newFakeKube(t *testing.T) *fakeKube {
	f := &fakeKube{watching: make(chan string, 8)}
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

// checkJSON fails unless every canned body is valid JSON (a typo would
// make kubectl fail for the wrong reason).
func TestFakeKubeBodies(t *testing.T) {
	for _, b := range []string{fakeAPIVersions, fakeGroups, fakeVersion, fakeResources, fmt.Sprintf(fakePodMeta, "dev")} {
		if !json.Valid([]byte(b)) {
			t.Errorf("invalid JSON: %s", b)
		}
	}
}
