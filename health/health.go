// Package health tells a load balancer the truth: GET /healthz answers 200 only while
// the dataplane is up and the node is not draining, 503 otherwise, so that a GWLB or
// NLB target group stops sending before weir stops forwarding. It also serves the
// Prometheus metrics.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// State is the node's health as the load balancer should see it.
type State struct {
	dataplaneUp atomic.Bool
	draining    atomic.Bool
	stall       atomic.Pointer[StallCheck]
	// syncing, when set, is why the node may not take traffic yet (a fleet node
	// pulling its peers' flows): the load balancer must not send it flows it cannot
	// know.
	syncing atomic.Pointer[string]
}

// SetSyncing makes health fail with reason until SetSynced; a fleet node calls it
// before its bulk sync starts.
func (s *State) SetSyncing(reason string) { s.syncing.Store(&reason) }

// SetSynced ends SetSyncing.
func (s *State) SetSynced() { s.syncing.Store(nil) }

// StallCheck reports a dataplane worker that has made no progress for too long, and
// how long. health does not import the dataplane: the node wires this to the
// pipeline's Stalled.
type StallCheck func() (worker int, stalledFor time.Duration, stalled bool)

// SetStallCheck makes a stalled dataplane worker fail health; nil turns it off.
func (s *State) SetStallCheck(f StallCheck) {
	if f == nil {
		s.stall.Store(nil)
		return
	}
	s.stall.Store(&f)
}

// SetDataplaneUp records whether every dataplane worker is receiving.
func (s *State) SetDataplaneUp(up bool) { s.dataplaneUp.Store(up) }

// Drain marks the node as leaving: health fails from now on, traffic still flows.
func (s *State) Drain() { s.draining.Store(true) }

// Draining reports whether Drain was called.
func (s *State) Draining() bool { return s.draining.Load() }

// Healthy reports whether the node should receive new traffic, and if not, why.
func (s *State) Healthy() (bool, string) {
	st := s.status()
	return st.ok, st.Status
}

// status is the health answer, as the JSON body says it.
type status struct {
	ok         bool
	Status     string `json:"status"`
	Worker     *int   `json:"worker,omitempty"`
	StalledFor string `json:"stalled_for,omitempty"`
}

func (s *State) status() status {
	switch {
	case s.draining.Load():
		return status{Status: "draining"}
	case !s.dataplaneUp.Load():
		return status{Status: "dataplane down"}
	}
	if r := s.syncing.Load(); r != nil {
		return status{Status: *r}
	}
	if f := s.stall.Load(); f != nil {
		if w, d, stalled := (*f)(); stalled {
			return status{Status: "dataplane stalled", Worker: &w,
				StalledFor: d.Round(100 * time.Millisecond).String()}
		}
	}
	return status{ok: true, Status: "serving"}
}

// Handler answers GET and HEAD /healthz: 200 serving, 503 draining, dataplane down or
// a dataplane worker stalled, with a small JSON body saying which (and, when stalled,
// which worker and for how long).
func (s *State) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		st := s.status()
		code := http.StatusOK
		if !st.ok {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(st)
	})
}

// JSONHandler answers GET and HEAD with what report returns, as JSON: health
// serves the dataplane's reports (GET /mirror) without importing the dataplane.
func JSONHandler(report func() any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := json.MarshalIndent(report(), "", "  ")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(append(body, '\n'))
	})
}

// NewRegistry is a Prometheus registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves reg in the Prometheus text format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Server is an HTTP listener started by Serve.
type Server struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
}

// Serve listens on addr and serves h in the background. The listener is bound when
// Serve returns, so a failed bind is an error here, not later.
func Serve(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second},
		ln:  ln, log: log,
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server failed", "addr", addr, "err", err)
		}
	}()
	return s, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, letting requests in flight finish for up to a second.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
