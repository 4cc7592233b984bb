package main

import "testing"

func TestProbeMirror(t *testing.T) {
	for _, d := range []string{
		"mirror:\n  sessions:\n    - vni: 1\n      filter:\n        EgressFilterRules:\n          - {RuleNumber: 100, RuleAction: accept, TrafficDirection: ingress, SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}\n",
		"mirror:\n  sessions:\n    - vni: 1\n      filter:\n        EgressFilterRules:\n          - {RuleNumber: 100, RuleAction: accept, TrafficDirection: ingress, SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}\n          - {RuleNumber: 200, RuleAction: maybe, TrafficDirection: egress, SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}\n",
		"mirror:\n  sessions:\n    - vni: 1\n      filter: nope.json\n",
		"mirror:\n  sessions:\n    - vni: 1\n      filter:\n        TrafficMirrorFilterId: tmf-1\n        EgressFilterRules:\n          - {RuleNumber: 100, RuleAction: accept, TrafficDirection: ingress, SourceCidrBlock: 0.0.0.0/0, DestinationCidrBlock: 0.0.0.0/0}\n",
	} {
		_, err := ParseConfig("test.yaml", []byte(d))
		t.Logf("%q", err)
	}
}
