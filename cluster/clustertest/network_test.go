package clustertest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"weir/cluster"
)

func fleet(t *testing.T, nw *Network, n int) ([]cluster.Transport, []*Recorder, []*Node) {
	var ts []cluster.Transport
	var rs []*Recorder
	var nodes []*Node
	for i := range n {
		r := NewRecorder()
		node := nw.Add(fmt.Sprintf("node-%d", i), r)
		ts, rs, nodes = append(ts, node), append(rs, r), append(nodes, node)
	}
	return ts, rs, nodes
}

func TestContract(t *testing.T) {
	nw := NewNetwork(1)
	t.Cleanup(nw.Close)
	ts, rs, _ := fleet(t, nw, 3)
	Contract(t, ts, rs, 5*time.Second)
}

func TestContractLossy(t *testing.T) {
	nw := NewNetwork(2)
	t.Cleanup(nw.Close)
	nw.SetLoss(0.3)
	ts, rs, _ := fleet(t, nw, 4)
	Contract(t, ts, rs, 5*time.Second)
}

func TestLossAndLeave(t *testing.T) {
	nw := NewNetwork(3)
	t.Cleanup(nw.Close)
	_, rs, nodes := fleet(t, nw, 3)
	nw.SetLoss(0.5)
	for range 1000 {
		nodes[0].Broadcast([]byte("x"))
	}
	nw.Wait()
	got := len(rs[1].Messages())
	if got < 400 || got > 600 {
		t.Errorf("with 50%% loss, %d of 1000 broadcasts arrived", got)
	}
	nodes[2].Remove()
	nw.Wait()
	if !slices.Equal(rs[0].Left(), []string{"node-2"}) || !slices.Equal(rs[1].Left(), []string{"node-2"}) {
		t.Errorf("PeerLeft = %q, %q", rs[0].Left(), rs[1].Left())
	}
	if p := nodes[0].Peers(); !slices.Equal(p, []string{"node-1"}) {
		t.Errorf("Peers = %q", p)
	}
	if err := nodes[2].SendTo("node-0", []byte("x")); err == nil {
		t.Error("a removed node could send")
	}
}
