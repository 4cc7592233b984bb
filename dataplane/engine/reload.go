package engine

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"weir/config"

	"weir/dataplane"
	"weir/dataplane/detect"
	"weir/dataplane/mirror"
)

// Reloaded says what a reload put in force.
type Reloaded struct {
	PolicyRules int // rules of the inline policy now in force
	Sessions    int // mirror sessions now in force
	Detect      DetectInfo
	// Warnings say what of the new configuration is in force only in part.
	Warnings []string
	// Restart names the keys that differ in the new file but cannot change without
	// a restart; their running values are kept.
	Restart []string
}

// A reload replaces these keys while packets flow. Every other key needs a restart
// (restartKeys); TestEveryKeyClassified keeps the two lists complete.
var reloadKeys = []configKey{
	{"gwlb.allowed_sources", "GWLB.AllowedSources"},
	{"policy", "Policy"},
	{"mirror.sessions", "Mirror.Sessions"},
	{"mirror.amazon_dns", "Mirror.AmazonDNS"},
	{"log.level", "Log.Level"}, // applied by the caller, which owns the logger
	// Detection is rebuilt from its files on every reload (rule files change
	// without the configuration changing), when it was on at start.
	{"detect.rules", "Detect.Rules"},
	{"detect.rules", "Detect.RuleLines"},
	{"detect.rules", "Detect.File"},
	{"detect.vars", "Detect.Vars"},
	{"detect.vars", "Detect.VarLines"},
	{"detect.mode", "Detect.Mode"},
	{"detect.stream_depth", "Detect.StreamDepth"},
	{"detect.alert_packet", "Detect.AlertPacket"},
	{"detect.intel", "Detect.Intel"},
	{"detect.portscan.ports", "Detect.PortScan.Ports"},
	{"detect.portscan.hosts", "Detect.PortScan.Hosts"},
	{"detect.portscan.window", "Detect.PortScan.Window"},
	{"detect.portscan.repeat", "Detect.PortScan.Repeat"},
	{"detect.synflood.half_open", "Detect.SYNFlood.HalfOpen"},
	{"detect.synflood.window", "Detect.SYNFlood.Window"},
	{"detect.synflood.repeat", "Detect.SYNFlood.Repeat"},
}

// restartKeys are the keys a reload cannot change: listeners, sockets, table
// sizes and timeouts, outputs.
var restartKeys = []configKey{
	{"gwlb.listen", "GWLB.Listen"},
	{"gwlb.reply", "GWLB.Reply"},
	{"dataplane.workers", "Dataplane.Workers"},
	{"dataplane.batch", "Dataplane.Batch"},
	{"dataplane.recv_buffer", "Dataplane.RecvBuffer"},
	{"dataplane.backend", "Dataplane.Backend"},
	{"dataplane.interface", "Dataplane.Interface"},
	{"dataplane.queues", "Dataplane.Queues"},
	{"dataplane.zerocopy", "Dataplane.ZeroCopy"},
	{"dataplane.fast_path", "Dataplane.FastPath"},
	{"health.listen", "Health.Listen"},
	{"health.drain_delay", "Health.DrainDelay"},
	{"health.stall_timeout", "Health.StallTimeout"},
	{"metrics.listen", "Metrics.Listen"},
	{"flows.max", "Flows.Max"},
	{"flows.tcp_timeout", "Flows.TCPTimeout"},
	{"flows.other_timeout", "Flows.OtherTimeout"},
	{"flows.closed_timeout", "Flows.ClosedTimeout"},
	{"flows.midstream", "Flows.Midstream"},
	{"mirror.listen", "Mirror.Listen"},
	{"mirror.dedupe_window", "Mirror.DedupeWindow"},
	{"mirror.gwlb_endpoints", "Mirror.GWLBEndpoints"},
	{"mirror.allowed_sources", "Mirror.AllowedSources"},
	{"outputs.eve", "Outputs.EVE"},
	{"outputs.eve_queue", "Outputs.EVEQueue"},
	{"outputs.pcap.dir", "Outputs.PCAP.Dir"},
	{"outputs.pcap.max_file_size", "Outputs.PCAP.MaxFileSize"},
	{"outputs.pcap.max_file_age", "Outputs.PCAP.MaxFileAge"},
	{"outputs.pcap.max_total_size", "Outputs.PCAP.MaxTotalSize"},
	{"outputs.pcap.queue", "Outputs.PCAP.Queue"},
	{"outputs.pcap.reorder_window", "Outputs.PCAP.ReorderWindow"},
	{"outputs.flowlog.path", "Outputs.FlowLog.Path"},
	{"outputs.flowlog.interval", "Outputs.FlowLog.Interval"},
	{"outputs.flowlog.account_id", "Outputs.FlowLog.AccountID"},
	{"log.format", "Log.Format"},
	{"log.file", "Log.File"}, // reopened at its path on SIGHUP, but not moved
	{"cluster.bind", "Cluster.Bind"},
	{"cluster.advertise", "Cluster.Advertise"},
	{"cluster.node_name", "Cluster.NodeName"},
	{"cluster.join", "Cluster.Join"},
	{"cluster.secret_key_file", "Cluster.SecretKeyFile"}, // its keys are re-read on SIGHUP
	{"cluster.insecure", "Cluster.Insecure"},
	{"cluster.discover", "Cluster.Discover.Provider"},
	{"cluster.discover", "Cluster.Discover.TagKey"},
	{"cluster.discover", "Cluster.Discover.TagValue"},
	{"cluster.discover", "Cluster.Discover.ASGName"},
	{"cluster.discover", "Cluster.Discover.Port"},
	{"cluster.discover", "Cluster.Discover.Refresh"},
	{"cluster.discover", "Cluster.Discover.Region"},
	{"aws.lifecycle", "AWS.Lifecycle.HookName"},
	{"aws.lifecycle", "AWS.Lifecycle.ASGName"},
	{"aws.lifecycle", "AWS.Lifecycle.Poll"},
}

// configKey is a configuration key and the config.Config field that holds it.
type configKey struct{ name, field string }

func (k configKey) value(c *config.Config) reflect.Value {
	v := reflect.ValueOf(c).Elem()
	for _, f := range strings.Split(k.field, ".") {
		v = v.FieldByName(f)
	}
	return v
}

// Current is the configuration in force: the one the engine started with, with
// what reloads replaced.
func (e *Engine) Current() *config.Config { return e.live.Load() }

// Reload reads the configuration file at path and puts in force what can change
// while packets flow: the inline policy (for new flows: a flow keeps the verdict it
// was given), gwlb.allowed_sources, and the mirror sessions with their filters and
// mirror.amazon_dns. A file that fails to load changes nothing and its error
// (FILE:LINE: message) is returned. Keys that differ but need a restart keep their
// running values and are named in Reloaded.Restart. Packet workers never wait for
// a reload: each thing is swapped behind an atomic pointer.
func (e *Engine) Reload(path string) (Reloaded, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return Reloaded{}, err
	}
	return e.Apply(cfg)
}

// Apply is Reload with a configuration already loaded.
func (e *Engine) Apply(next *config.Config) (Reloaded, error) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	cur := e.live.Load()
	merged := *next
	var r Reloaded
	for _, k := range restartKeys {
		running, wanted := k.value(cur), k.value(next)
		if !reflect.DeepEqual(running.Interface(), wanted.Interface()) && !slices.Contains(r.Restart, k.name) {
			r.Restart = append(r.Restart, k.name) // once for a section of several fields
		}
		k.value(&merged).Set(running)
	}
	// Detection is built first: a rule file that fails to load changes nothing.
	var eng *detect.Engine
	switch {
	case e.Detect != nil:
		var err error
		if eng, r.Detect, err = buildDetect(&merged, e.flowbits, e.Log); err != nil {
			e.detectReloads[1].Add(1)
			return Reloaded{}, err
		}
		if need, room := eng.StreamTail(), e.Detect.StreamTail(); need > room {
			r.Warnings = append(r.Warnings, fmt.Sprintf("detect.rules: the longest payload content is now %d bytes, "+
				"but flows keep the last %d bytes of each TCP stream (set at start): a longer content split across "+
				"segments matches only after a restart", need+1, room))
		}
	case merged.Detect.Enabled():
		r.Restart = append(r.Restart, "detect")
		merged.Detect = cur.Detect
	}
	list, err := e.sessionsOf(&merged)
	if err != nil {
		if eng != nil {
			e.detectReloads[1].Add(1)
		}
		return Reloaded{}, err
	}
	pol := merged.Policy
	pol.RuleBase = len(e.ruleNames) // numbers past every rule so far: old flows keep their names
	e.ruleNames = ruleNames(e.ruleNames, pol.Rules)
	// The counters and the EVE names learn of new session indexes before any
	// packet can carry them.
	e.Pipeline.SetSessions(int(e.lastIndex))
	if e.EVE != nil {
		e.EVE.SetSessionNames(e.sessionNames())
		e.EVE.SetRuleNames(e.ruleNames) // before the policy: a new flow's rule has its name
	}
	e.Sessions.Replace(list)
	e.policy.Store(&pol)
	e.geneve.SetAllowedSources(merged.GWLB.AllowedSources)
	if eng != nil {
		e.Detect.SetEngine(eng)
		e.detectInfo.Store(&r.Detect)
		e.detectReloads[0].Add(1)
	}
	e.live.Store(&merged)
	r.PolicyRules, r.Sessions = len(pol.Rules), len(list)
	return r, nil
}

// knownSession is what the engine keeps of a session across reloads, by name.
type knownSession struct {
	index uint16
	mac   []byte
	ip    netip.Addr
	dirs  *mirror.Directions // learned direction state, kept while the ENI is the same
}

// sessionsOf builds the dataplane sessions of cfg. A session keeps the index it
// had under its name (its flows and counters carry on) and its learned
// directions when its ENI is unchanged; a new name gets a new index. With no
// sessions configured, one catch-all session mirrors every VNI, unfiltered.
func (e *Engine) sessionsOf(cfg *config.Config) ([]*dataplane.Session, error) {
	confs := cfg.Mirror.Sessions
	if len(confs) == 0 {
		confs = []config.SessionConfig{{Name: "default", CatchAll: true}}
	}
	if len(confs) > dataplane.MaxSessions {
		return nil, fmt.Errorf("mirror.sessions: %d sessions, more than %d", len(confs), dataplane.MaxSessions)
	}
	if e.known == nil {
		e.known = make(map[string]*knownSession)
	}
	used := make(map[uint16]bool, len(confs))
	for _, sc := range confs {
		if k := e.known[sc.Name]; k != nil {
			used[k.index] = true
		}
	}
	var list []*dataplane.Session
	for _, sc := range confs {
		k := e.known[sc.Name]
		if k == nil {
			k = &knownSession{index: e.newIndex(used)}
			used[k.index] = true
			e.known[sc.Name] = k
		}
		if k.dirs == nil || !bytes.Equal(k.mac, sc.ENIMAC) || k.ip != sc.ENIIP {
			k.mac, k.ip = sc.ENIMAC, sc.ENIIP
			k.dirs = mirror.NewDirections(sc.ENIMAC, sc.ENIIP, 1024)
		}
		list = append(list, &dataplane.Session{
			Index: k.index, Name: sc.Name, VNI: sc.VNI, CatchAll: sc.CatchAll,
			PacketLength: sc.PacketLength, Filter: sc.Filter, AmazonDNS: cfg.Mirror.AmazonDNS,
			Directions: k.dirs, InterfaceID: sc.InterfaceID,
		})
	}
	byIndex := make([]*dataplane.Session, int(e.lastIndex)+1)
	if old := e.byIndex.Load(); old != nil {
		copy(byIndex, *old)
	}
	for _, x := range list {
		byIndex[x.Index] = x
	}
	e.byIndex.Store(&byIndex)
	return list, nil
}

// newIndex hands out the next session index. Once all MaxSessions have been used,
// it takes back the lowest one no session in force holds (its counters carry on
// from the removed session's).
func (e *Engine) newIndex(used map[uint16]bool) uint16 {
	if e.lastIndex < dataplane.MaxSessions {
		e.lastIndex++
		return e.lastIndex
	}
	for i := uint16(1); ; i++ {
		if !used[i] {
			for name, k := range e.known {
				if k.index == i {
					delete(e.known, name)
				}
			}
			return i
		}
	}
}

// sessionAt is the latest session that had index i, or nil.
func (e *Engine) sessionAt(i uint16) *dataplane.Session {
	if p := e.byIndex.Load(); p != nil && int(i) < len(*p) {
		return (*p)[i]
	}
	return nil
}

// sessionNames names every session index handed out, for EVE records.
func (e *Engine) sessionNames() []string {
	l := *e.byIndex.Load()
	names := make([]string, len(l))
	for i, x := range l {
		if x != nil {
			names[i] = x.Name
		}
	}
	return names
}

// ReopenOutputs opens the EVE log and the flow log again at their paths, after
// logrotate renamed them, and says how many files it reopened. Every record goes
// to exactly one file, the old or the new; nothing on the packet path waits.
func (e *Engine) ReopenOutputs() (int, error) {
	n := 0
	var errs []error
	if e.EVE != nil && e.EVE.CanReopen() {
		if err := e.EVE.Reopen(); err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
	}
	if e.FlowLog != nil && e.FlowLog.CanReopen() {
		if err := e.FlowLog.Reopen(); err != nil {
			errs = append(errs, err)
		} else {
			n++
		}
	}
	return n, errors.Join(errs...)
}
