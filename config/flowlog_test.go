package config

import "testing"

// TestFlowLogFields: what goes into the space-separated flow-log records is
// checked, so no value can add or split a field.
func TestFlowLogFields(t *testing.T) {
	for _, ok := range []string{
		"outputs:\n  flowlog: {path: f.log, account_id: \"123456789012\"}\n",
		"outputs:\n  flowlog: {path: f.log, account_id: 012345678901}\n",
		"outputs:\n  flowlog: {path: f.log, account_id: \"-\"}\n",
		"mirror:\n  sessions:\n    - {vni: 1, interface_id: eni-0123456789abcdef0}\n",
		"mirror:\n  sessions:\n    - {vni: 1, interface_id: eni-1a2b3c4d}\n",
	} {
		if _, err := Parse("weir.yaml", []byte(ok)); err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
		}
	}
	for _, tc := range []struct {
		name, data string
		line       int
		want       string
	}{
		{"account id with a space", "outputs:\n  flowlog:\n    account_id: \"1234 56789012\"\n", 3, `outputs.flowlog.account_id: "1234 56789012" is not an AWS account id`},
		{"account id too short", "outputs:\n  flowlog:\n    account_id: \"12345\"\n", 3, "12 digits"},
		{"account id letters", "outputs:\n  flowlog:\n    account_id: abcdefghijkl\n", 3, "not an AWS account id"},
		{"empty account id", "outputs:\n  flowlog:\n    account_id: \"\"\n", 3, "not an AWS account id"},
		{"interface id with a space", "mirror:\n  sessions:\n    - vni: 1\n      interface_id: \"eni-0a1b 2c\"\n", 4,
			`mirror.sessions[0].interface_id: "eni-0a1b 2c" is not an ENI id`},
		{"interface id without eni-", "mirror:\n  sessions:\n    - vni: 1\n      interface_id: 0a1b2c3d\n", 4, "eni- and hex digits"},
		{"interface id not hex", "mirror:\n  sessions:\n    - vni: 1\n      interface_id: eni-xyz\n", 4, "not an ENI id"},
		{"interface id too long", "mirror:\n  sessions:\n    - vni: 1\n      interface_id: eni-0123456789abcdef01\n", 4, "not an ENI id"},
		{"bare eni-", "mirror:\n  sessions:\n    - vni: 1\n      interface_id: eni-\n", 4, "not an ENI id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigError(t, tc.data, tc.line, tc.want)
		})
	}
}
