package config

import (
	"reflect"
	"testing"

	"weir/dataplane/policy"
)

func TestPolicyPortListsAndNames(t *testing.T) {
	c, err := Parse("weir.yaml", []byte(`policy:
  rules:
    - {name: web, action: allow, proto: tcp, dst_port: [80, 443, 8000-8080]}
    - {action: drop, proto: udp, src_port: [53], dst_port: 1024-65535}
    - {name: telnet, action: drop, proto: tcp, dst_port: 23}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Policy.Rules
	if len(r) != 3 {
		t.Fatalf("rules: %+v", r)
	}
	if want := (policy.Ports{{Lo: 80, Hi: 80}, {Lo: 443, Hi: 443}, {Lo: 8000, Hi: 8080}}); !reflect.DeepEqual(r[0].DstPorts, want) || !r[0].DstPort.Any() {
		t.Errorf("rule 0 ports: %+v %+v", r[0].DstPort, r[0].DstPorts)
	}
	if r[0].Name != "web" || r[1].Name != "" || r[2].Name != "telnet" {
		t.Errorf("names: %q %q %q", r[0].Name, r[1].Name, r[2].Name)
	}
	if !reflect.DeepEqual(r[1].SrcPorts, policy.Ports{{Lo: 53, Hi: 53}}) || r[1].DstPort != (policy.PortRange{Lo: 1024, Hi: 65535}) || r[1].DstPorts != nil {
		t.Errorf("rule 1 ports: %+v", r[1])
	}
	if r[2].DstPort != (policy.PortRange{Lo: 23, Hi: 23}) || r[2].DstPorts != nil {
		t.Errorf("rule 2 ports: %+v", r[2])
	}
}

func TestPolicyErrors(t *testing.T) {
	rule := func(s string) string { return "policy:\n  rules:\n    - " + s + "\n" }
	for _, tc := range []struct {
		name, data string
		line       int
		want       []string
	}{
		{"deny", rule("{action: deny}"), 3, []string{"policy.rules[0].action", `"deny" is not allow or drop: did you mean drop?`}},
		{"reject", rule("{action: reject}"), 3, []string{"did you mean drop?"}},
		{"block", rule("{action: block}"), 3, []string{"did you mean drop?"}},
		{"accept", rule("{action: accept}"), 3, []string{"did you mean allow?"}},
		{"permit", rule("{action: Permit}"), 3, []string{"did you mean allow?"}},
		{"pass", rule("{action: pass}"), 3, []string{"did you mean allow?"}},
		{"default deny", "policy:\n  default: deny\n", 2, []string{"policy.default", "did you mean drop?"}},
		{"protocol", rule("action: drop\n      protocol: tcp"), 4, []string{`unknown key "policy.rules[0].protocol": did you mean proto?`}},
		{"port", rule("{action: drop, proto: tcp, port: 23}"), 3, []string{`"policy.rules[0].port": did you mean dst_port?`}},
		{"source", rule("{action: drop, source: 10.0.0.0/8}"), 3, []string{"did you mean src?"}},
		{"destination", rule("{action: drop, destination: 10.0.0.0/8}"), 3, []string{"did you mean dst?"}},
		{"bad port in a list", rule("{action: drop, proto: tcp, dst_port: [80, http]}"), 3, []string{"policy.rules[0].dst_port", `"http" is not a port`}},
		{"port list needs tcp or udp", rule("{action: drop, dst_port: [80, 443]}"), 3, []string{"ports need proto tcp or udp"}},
		{"empty port list", rule("{action: drop, proto: tcp, dst_port: []}"), 3, []string{"empty list matches no port"}},
		{"port list of lists", rule("{action: drop, proto: tcp, dst_port: [[80]]}"), 3, []string{"dst_port", "expected a single value"}},
		{"duplicate name", rule("{name: a, action: drop}") + "    - {name: a, action: allow}\n", 4, []string{`rule name "a" is already used at line 3`}},
		{"empty name", rule(`{name: "", action: drop}`), 3, []string{"policy.rules[0].name: empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigError(t, tc.data, tc.line, tc.want...)
		})
	}
}
