package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"text/tabwriter"
	"time"

	"weir/cluster"
	"weir/internal/echo"
)

const clusterUsage = `usage: weir cluster status -addr HOST:PORT

Prints the fleet as one node sees it: every member with its address and state
(alive, suspect, dead, left) and since when. HOST:PORT is that node's health.listen;
weir serves its view there as JSON at /cluster when cluster.bind is set.

flags:
`

func cmdCluster(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "status" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprint(stdout, clusterUsage)
			return nil
		}
		return usageError{errors.New("usage: weir cluster status -addr HOST:PORT")}
	}
	fs := flag.NewFlagSet("cluster status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = commandUsage(fs, clusterUsage)
	addr := fs.String("addr", "127.0.0.1:8080", "a node's health.listen `HOST:PORT`")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args[1:], stdout); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return usageError{fmt.Errorf("-addr %s: not HOST:PORT", echo.Quote(*addr))}
	}
	st, err := fetchClusterStatus(*addr, *timeout)
	if err != nil {
		return err
	}
	printClusterStatus(stdout, st, time.Now())
	return nil
}

func fetchClusterStatus(addr string, timeout time.Duration) (cluster.Status, error) {
	var st cluster.Status
	url := "http://" + addr + "/cluster"
	resp, err := (&http.Client{Timeout: timeout}).Get(url)
	if err != nil {
		return st, fmt.Errorf("cluster status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return st, fmt.Errorf("cluster status: %s: not found: that node runs standalone (no cluster.bind), or it is not weir's health.listen", url)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("cluster status: %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return st, fmt.Errorf("cluster status: %s: %w", url, err)
	}
	return st, nil
}

// printClusterStatus writes the members as a table, this node marked with *.
func printClusterStatus(w io.Writer, st cluster.Status, now time.Time) {
	enc := fmt.Sprintf("encrypted (%d keys)", st.Keys)
	if st.Keys == 1 {
		enc = "encrypted (1 key)"
	}
	if !st.Encrypted {
		enc = "NOT encrypted (cluster.insecure)"
	}
	counts := map[string]int{}
	for _, m := range st.Members {
		counts[m.State]++
	}
	fmt.Fprintf(w, "node %s at %s, gossip %s: %d alive, %d suspect, %d dead, %d left\n\n",
		echo.Quote(st.Node), st.Address, enc, counts[cluster.StateAlive], counts[cluster.StateSuspect],
		counts[cluster.StateDead], counts[cluster.StateLeft])
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tSTATE\tFOR")
	for _, m := range st.Members {
		name := echo.Clip(m.Name, cluster.MaxNameLen)
		if m.Self {
			name += " *"
		}
		since := "-"
		if !m.Since.IsZero() {
			since = now.Sub(m.Since).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, m.Address, m.State, since)
	}
	tw.Flush()
	if sync, ok := st.Sync.(map[string]any); ok {
		ready := "syncing from a peer"
		if r, _ := sync["ready"].(bool); r {
			ready = "ready"
		}
		fmt.Fprintf(w, "\nflow sync: %s", ready)
		if peers, _ := sync["peers"].([]any); len(peers) > 0 {
			fmt.Fprintf(w, "; last message from")
			for i, p := range peers {
				pm, _ := p.(map[string]any)
				sep := ","
				if i == 0 {
					sep = ""
				}
				fmt.Fprintf(w, "%s %s %v ago", sep, echo.Clip(fmt.Sprint(pm["peer"]), cluster.MaxNameLen), pm["last_message_ago"])
			}
		}
		fmt.Fprintln(w)
	}
}
