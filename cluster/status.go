package cluster

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Member is one node of the fleet as this node sees it.
type Member struct {
	Name    string    `json:"name"`
	Address string    `json:"address"`
	State   string    `json:"state"` // alive, suspect, dead, left
	Since   time.Time `json:"since"`
	Self    bool      `json:"self,omitempty"`
}

// Status is the fleet as this node sees it.
type Status struct {
	Node      string   `json:"node"`
	Address   string   `json:"address"`
	Encrypted bool     `json:"encrypted"`
	Keys      int      `json:"keys"`           // keys installed (2 or more mid-rotation)
	Members   []Member `json:"members"`        // by name, this node included
	Sync      any      `json:"sync,omitempty"` // what the flow sync reports (SetSyncStatus)
}

// SetSyncStatus has GET /cluster include what f returns, as "sync" (the flow sync's
// state: the membership does not know it).
func (n *Node) SetSyncStatus(f func() any) { n.syncStatus.Store(&f) }

// Status reports the members this node knows, dead and left ones for 30 minutes.
func (n *Node) Status() Status {
	st := Status{Node: n.name, Encrypted: n.mlConf.Keyring != nil}
	if kr := n.mlConf.Keyring; kr != nil {
		st.Keys = len(kr.GetKeys())
	}
	if a := n.Addr(); a.IsValid() {
		st.Address = a.String()
	}
	// A suspicion lasts at most SuspicionMaxTimeoutMult × the suspicion timeout;
	// a peer still marked suspect after that has refuted it.
	lapse := time.Duration(n.mlConf.SuspicionMaxTimeoutMult*SuspicionMult)*ProbeInterval*2 + time.Second
	now := time.Now()
	n.mu.Lock()
	for name, m := range n.members {
		if (m.state == StateDead || m.state == StateLeft) && now.Sub(m.since) > forget {
			delete(n.members, name)
			continue
		}
		if m.state == StateSuspect && now.Sub(m.since) > lapse {
			m.state, m.since = StateAlive, now
		}
		st.Members = append(st.Members, Member{Name: name, Address: m.node.Address(), State: m.state, Since: m.since, Self: name == n.name})
	}
	n.mu.Unlock()
	slices.SortFunc(st.Members, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return st
}

// ServeHTTP answers GET /cluster with Status as JSON.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	st := n.Status()
	if f := n.syncStatus.Load(); f != nil {
		st.Sync = (*f)()
	}
	_ = enc.Encode(st)
}

var (
	membersDesc  = prometheus.NewDesc("weir_cluster_members", "Fleet members this node knows, by state (this node included).", []string{"state"}, nil)
	rejectedDesc = prometheus.NewDesc("weir_cluster_rejected_total", "Gossip packets and connections refused, by reason (decrypt: a peer without our key, never admitted).", []string{"reason"}, nil)
)

// Collector returns the node's Prometheus metrics: weir_cluster_members{state} and
// weir_cluster_rejected_total{reason}.
func (n *Node) Collector() prometheus.Collector { return collector{n} }

type collector struct{ n *Node }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- membersDesc
	ch <- rejectedDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{StateAlive: 0, StateSuspect: 0, StateDead: 0, StateLeft: 0}
	for _, m := range c.n.Status().Members {
		counts[m.State]++
	}
	for _, s := range []string{StateAlive, StateSuspect, StateDead, StateLeft} {
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(counts[s]), s)
	}
	for i, r := range reasonNames {
		ch <- prometheus.MustNewConstMetric(rejectedDesc, prometheus.CounterValue, float64(c.n.rejected[i].Load()), r)
	}
}
