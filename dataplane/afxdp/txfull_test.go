package afxdp

import "testing"

// TestSendTxFull: with the TX ring full every reply's frame goes back to the
// free stack and counts as txFull; none is lost.
func TestSendTxFull(t *testing.T) {
	wk, turn := newTestWorker(t)
	wk.reap()
	wk.refill()
	tx := wk.sock.TX()
	_, got := tx.Reserve(tx.Size()) // occupy the whole ring, never submitted
	if got != tx.Size() {
		t.Fatalf("reserved %d", got)
	}
	f0 := wk.umem.FreeFrames()
	for range 5 {
		turn()
	}
	if f1 := wk.umem.FreeFrames(); f1 != f0 {
		t.Errorf("free frames %d after turns with TX full, want %d", f1, f0)
	}
	if wk.local.txFull != 5*32 || wk.inFlight != 0 {
		t.Errorf("txFull %d inFlight %d", wk.local.txFull, wk.inFlight)
	}
}
