package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCluster(t *testing.T) {
	c, err := Parse("w.yaml", []byte("cluster:\n  bind: 127.0.0.1:7946\n  insecure: true\n  join: [localhost, \"127.0.0.2:8000\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Bind.String() != "127.0.0.1:7946" || !c.Cluster.Insecure || len(c.Cluster.Join) != 2 {
		t.Errorf("cluster = %+v", c.Cluster)
	}
	if d := Default(); d.Cluster.Bind.IsValid() {
		t.Errorf("default cluster.bind = %v, want standalone", d.Cluster.Bind)
	}
	// An empty bind is standalone and needs no key.
	if _, err := Parse("w.yaml", []byte("cluster:\n  bind: \"\"\n")); err != nil {
		t.Errorf("empty bind: %v", err)
	}
}

func TestParseClusterErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		line       int
		want       string
	}{
		{"bind without port", "cluster:\n  bind: 10.0.1.5\n", 2, "cluster.bind"},
		{"bind hostname", "cluster:\n  insecure: true\n  bind: weir:7946\n", 3, "cluster.bind"},
		{"advertise bad", "cluster:\n  advertise: 10.0.1.5:x\n", 2, "cluster.advertise"},
		{"join bad port", "cluster:\n  join:\n    - 10.0.1.6\n    - 10.0.1.7:99999\n", 4, "cluster.join"},
		{"join bad name", "cluster:\n  join: [\"we ir\"]\n", 2, "cluster.join"},
		{"join not a list", "cluster:\n  join: 10.0.1.6\n", 2, "cluster.join: expected a list"},
		{"insecure not bool", "cluster:\n  insecure: maybe\n", 2, "cluster.insecure"},
		{"no key", "# fleet\ncluster:\n  bind: 10.0.1.5:7946\n", 3, "cluster.secret_key_file: required"},
		{"node name with space", "cluster:\n  node_name: a b\n", 2, "cluster.node_name"},
		{"unknown key", "cluster:\n  seeds: []\n", 2, `unknown key "cluster.seeds"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("w.yaml", []byte(tc.data))
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Line != tc.line || !strings.Contains(e.Msg, tc.want) {
				t.Errorf("err = %v, want line %d and %q", err, tc.line, tc.want)
			}
		})
	}
}

func TestSplitSeed(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
	}{
		{"10.0.1.6", "10.0.1.6", 7946},
		{"10.0.1.7:7000", "10.0.1.7", 7000},
		{"weir.internal", "weir.internal", 7946},
		{"localhost:1234", "localhost", 1234},
		{"fd00::1", "fd00::1", 7946},
		{"[fd00::1]:7000", "fd00::1", 7000},
	} {
		h, p, err := SplitSeed(tc.in)
		if err != nil || h != tc.host || p != tc.port {
			t.Errorf("SplitSeed(%q) = %q, %d, %v; want %q, %d", tc.in, h, p, err, tc.host, tc.port)
		}
	}
	for _, bad := range []string{"", ":7946", "a b", "host:0", "host:", "-bad.example"} {
		if _, _, err := SplitSeed(bad); err == nil {
			t.Errorf("SplitSeed(%q) accepted", bad)
		}
	}
}

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	k16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	k32 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.key", "# rotation: new first\n"+k32+"\n\n"+k16+"\n")
	keys, err := ReadKeyFile(good)
	if err != nil || len(keys) != 2 || len(keys[0]) != 32 || len(keys[1]) != 16 {
		t.Fatalf("ReadKeyFile = %d keys, %v", len(keys), err)
	}
	for _, tc := range []struct{ body, want string }{
		{k16 + "\nnot*base64\n", "bad.key:2: not a base64 key"},
		{k16 + "\n" + base64.StdEncoding.EncodeToString(make([]byte, 20)) + "\n", "bad.key:2: a key of 20 bytes"},
		{"# nothing\n", "bad.key: no key"},
	} {
		_, err := ReadKeyFile(write("bad.key", tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadKeyFile(%q) = %v, want %q", tc.body, err, tc.want)
		}
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing.key")); err == nil {
		t.Error("a missing file was accepted")
	}

	// check-config names the config line, then the key file's.
	cfgText := "cluster:\n  bind: 127.0.0.1:7946\n  secret_key_file: " + filepath.Join(dir, "bad.key") + "\n"
	write("bad.key", k16+"\n"+"zz\n")
	c, err := Parse("w.yaml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckClusterKeys()
	if err == nil || !strings.HasPrefix(err.Error(), "w.yaml:3: cluster.secret_key_file: ") || !strings.Contains(err.Error(), "bad.key:2:") {
		t.Errorf("CheckClusterKeys = %v", err)
	}
	c.Cluster.SecretKeyFile = good
	if err := c.CheckClusterKeys(); err != nil {
		t.Errorf("CheckClusterKeys(good) = %v", err)
	}
}

// TestClusterKeyFileRelative: a relative secret_key_file is read from the
// configuration file's folder, as filter files are.
func TestClusterKeyFileRelative(t *testing.T) {
	dir := t.TempDir()
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n" // 32 bytes
	if err := os.WriteFile(filepath.Join(dir, "cluster.key"), []byte("# example\n"+key), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(cfgPath, []byte("cluster:\n  bind: 127.0.0.1:7946\n  secret_key_file: cluster.key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "cluster.key"); c.Cluster.SecretKeyFile != want {
		t.Fatalf("secret_key_file = %q, want %q", c.Cluster.SecretKeyFile, want)
	}
	if err := c.CheckClusterKeys(); err != nil {
		t.Error(err)
	}
}

// TestClusterKeyFileRelativeMissingLine: a relative key file that is missing is
// reported with the configuration's line, like an absolute one.
func TestClusterKeyFileRelativeMissingLine(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "w.yaml")
	if err := os.WriteFile(cfgPath, []byte("cluster:\n  bind: 127.0.0.1:7946\n  secret_key_file: missing.key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfgPath)
	if err == nil {
		err = c.CheckClusterKeys()
	}
	if err == nil || !strings.HasPrefix(err.Error(), cfgPath+":3: cluster.secret_key_file: ") {
		t.Errorf("error %v, want %s:3: cluster.secret_key_file: …", err, cfgPath)
	}
}
