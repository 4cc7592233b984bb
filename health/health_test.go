package health_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"weir/health"
)

var quiet = slog.New(slog.DiscardHandler)

// probe sends one request to h and returns the code and the decoded status.
func probe(t *testing.T, h http.Handler, method string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/healthz", nil))
	if method != http.MethodGet {
		return rec.Code, rec.Body.String(), rec.Header()
	}
	var body struct{ Status string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s /healthz body %q is not JSON: %v", method, rec.Body, err)
	}
	return rec.Code, body.Status, rec.Header()
}

func TestHandlerStates(t *testing.T) {
	var s health.State
	h := s.Handler()
	check := func(when string, wantCode int, wantStatus string) {
		t.Helper()
		code, status, hdr := probe(t, h, http.MethodGet)
		if code != wantCode || status != wantStatus {
			t.Errorf("%s: GET = %d %q, want %d %q", when, code, status, wantCode, wantStatus)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type = %q", when, ct)
		}
		if cc := hdr.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control = %q", when, cc)
		}
		ok, why := s.Healthy()
		if ok != (wantCode == http.StatusOK) || why != wantStatus {
			t.Errorf("%s: Healthy() = %v, %q; want %v, %q", when, ok, why, wantCode == http.StatusOK, wantStatus)
		}
	}

	check("at start", http.StatusServiceUnavailable, "dataplane down")
	s.SetDataplaneUp(true)
	check("dataplane up", http.StatusOK, "serving")
	s.SetDataplaneUp(false)
	check("dataplane down again", http.StatusServiceUnavailable, "dataplane down")
	s.SetDataplaneUp(true)
	check("dataplane up again", http.StatusOK, "serving")

	if s.Draining() {
		t.Fatal("Draining() before Drain")
	}
	s.Drain()
	if !s.Draining() {
		t.Fatal("Draining() false after Drain")
	}
	check("draining, dataplane up", http.StatusServiceUnavailable, "draining")
	s.SetDataplaneUp(false)
	check("draining, dataplane down", http.StatusServiceUnavailable, "draining")
	s.SetDataplaneUp(true)
	check("draining, dataplane up again", http.StatusServiceUnavailable, "draining")
}

func TestHandlerMethods(t *testing.T) {
	var s health.State
	s.SetDataplaneUp(true)
	h := s.Handler()

	// (A recorder keeps what a HEAD handler writes; TestServe checks a real server
	// sends no body.)
	if code, _, _ := probe(t, h, http.MethodHead); code != http.StatusOK {
		t.Errorf("HEAD = %d, want 200", code)
	}

	s.Drain()
	if code, _, _ := probe(t, h, http.MethodHead); code != http.StatusServiceUnavailable {
		t.Errorf("HEAD while draining = %d, want 503", code)
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		code, _, hdr := probe(t, h, m)
		if code != http.StatusMethodNotAllowed {
			t.Errorf("%s = %d, want 405", m, code)
		}
		if allow := hdr.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "HEAD") {
			t.Errorf("%s: Allow = %q, want GET and HEAD", m, allow)
		}
	}
}

func TestServe(t *testing.T) {
	var s health.State
	mux := http.NewServeMux()
	mux.Handle("/healthz", s.Handler())
	srv, err := health.Serve("127.0.0.1:0", mux, quiet)
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	url := "http://" + srv.Addr().String() + "/healthz"
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	get := func(method string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, body := get(http.MethodGet); code != 503 || !strings.Contains(body, `"status":"dataplane down"`) {
		t.Errorf("GET = %d %q, want 503 dataplane down", code, body)
	}
	s.SetDataplaneUp(true)
	if code, body := get(http.MethodGet); code != 200 || body != "{\"status\":\"serving\"}\n" {
		t.Errorf("GET = %d %q, want 200 serving", code, body)
	}
	if code, body := get(http.MethodHead); code != 200 || body != "" {
		t.Errorf("HEAD = %d %q, want 200 and no body", code, body)
	}
	if code, _ := get(http.MethodPost); code != 405 {
		t.Errorf("POST = %d, want 405", code)
	}
	s.Drain()
	if code, body := get(http.MethodGet); code != 503 || !strings.Contains(body, `"status":"draining"`) {
		t.Errorf("GET = %d %q, want 503 draining", code, body)
	}

	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if resp, err := client.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("GET after Close answered %s", resp.Status)
	}
}

func TestServeBindError(t *testing.T) {
	srv, err := health.Serve("127.0.0.1:0", http.NotFoundHandler(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// The address is taken: the failure must come from Serve itself.
	if other, err := health.Serve(srv.Addr().String(), http.NotFoundHandler(), quiet); err == nil {
		other.Close()
		t.Fatalf("Serve on %s, which is in use, succeeded", srv.Addr())
	}
	if _, err := health.Serve("127.0.0.1:notaport", http.NotFoundHandler(), quiet); err == nil {
		t.Fatal("Serve on a bad address succeeded")
	}
}

func TestMetrics(t *testing.T) {
	reg := health.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "weir_test_packets_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)

	srv, err := health.Serve("127.0.0.1:0", health.MetricsHandler(reg), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics = %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want the Prometheus text format", ct)
	}
	for _, want := range []string{
		"# TYPE go_goroutines gauge\ngo_goroutines ",
		"\nprocess_cpu_seconds_total ",
		"\nprocess_resident_memory_bytes ",
		"\nweir_test_packets_total 3\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestStalled: a stalled dataplane worker fails health with the worker and how long,
// draining and dataplane down still take precedence, and recovery answers 200 again.
func TestStalled(t *testing.T) {
	var s health.State
	s.SetDataplaneUp(true)
	h := s.Handler()
	var stalled bool
	s.SetStallCheck(func() (int, time.Duration, bool) { return 3, 7234 * time.Millisecond, stalled })

	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != 200 || body != "{\"status\":\"serving\"}\n" {
		t.Errorf("not stalled: %d %q", code, body)
	}
	stalled = true
	if code, body := get(); code != 503 || body != `{"status":"dataplane stalled","worker":3,"stalled_for":"7.2s"}`+"\n" {
		t.Errorf("stalled: %d %q", code, body)
	}
	if ok, why := s.Healthy(); ok || why != "dataplane stalled" {
		t.Errorf("Healthy() = %v %q", ok, why)
	}
	s.SetStallCheck(nil)
	if code, _ := get(); code != 200 {
		t.Errorf("stall check off: %d, want 200", code)
	}
	s.SetStallCheck(func() (int, time.Duration, bool) { return 0, time.Minute, true })
	if code, body := get(); code != 503 || !strings.Contains(body, `"worker":0,`) {
		t.Errorf("worker 0 stalled: %d %q", code, body)
	}
	s.SetDataplaneUp(false)
	if _, body := get(); !strings.Contains(body, `"dataplane down"`) || strings.Contains(body, "worker") {
		t.Errorf("down and stalled: %q, want dataplane down", body)
	}
	s.SetDataplaneUp(true)
	s.Drain()
	if _, body := get(); !strings.Contains(body, `"draining"`) {
		t.Errorf("draining and stalled: %q, want draining", body)
	}
}

func TestJSONHandler(t *testing.T) {
	type vni struct {
		VNI     uint32  `json:"vni"`
		Session *string `json:"session"`
	}
	h := health.JSONHandler(func() any { return map[string]any{"vnis": []vni{{VNI: 7331466}}} })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/mirror", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got struct{ VNIs []map[string]any }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body.String())
	}
	if len(got.VNIs) != 1 || got.VNIs[0]["vni"] != float64(7331466) || got.VNIs[0]["session"] != nil {
		t.Errorf("body %s", rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/mirror", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", rec.Code)
	}
}

func TestSyncingFailsHealth(t *testing.T) {
	var s health.State
	s.SetDataplaneUp(true)
	s.SetSyncing("syncing flows from peers")
	if ok, why := s.Healthy(); ok || why != "syncing flows from peers" {
		t.Errorf("while syncing: %v %q", ok, why)
	}
	s.SetSynced()
	if ok, why := s.Healthy(); !ok {
		t.Errorf("after sync: %v %q", ok, why)
	}
	s.SetSyncing("syncing flows from peers")
	s.Drain()
	if _, why := s.Healthy(); why != "draining" {
		t.Errorf("draining while syncing says %q", why)
	}
}
