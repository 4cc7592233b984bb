package rules

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Vars are the address and port groups rules refer to as $NAME, as in
// suricata.yaml's vars section: names without the $, values in rule syntax
// (which may refer to other variables).
type Vars struct {
	Addr, Port map[string]string
}

// DefaultVars returns Suricata 8's default address-groups and port-groups.
func DefaultVars() *Vars {
	v := &Vars{
		Addr: map[string]string{
			"HOME_NET":     "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]",
			"EXTERNAL_NET": "!$HOME_NET",
		},
		Port: map[string]string{
			"HTTP_PORTS":      "80",
			"SHELLCODE_PORTS": "!80",
			"ORACLE_PORTS":    "1521",
			"SSH_PORTS":       "22",
			"DNP3_PORTS":      "20000",
			"MODBUS_PORTS":    "502",
			"FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]",
			"FTP_PORTS":       "21",
			"GENEVE_PORTS":    "6081",
			"VXLAN_PORTS":     "4789",
			"TEREDO_PORTS":    "3544",
			"SIP_PORTS":       "[5060,5061]",
		},
	}
	for _, name := range []string{"HTTP_SERVERS", "SMTP_SERVERS", "SQL_SERVERS", "DNS_SERVERS",
		"TELNET_SERVERS", "AIM_SERVERS", "DC_SERVERS", "DNP3_SERVER", "DNP3_CLIENT",
		"MODBUS_CLIENT", "MODBUS_SERVER", "ENIP_CLIENT", "ENIP_SERVER"} {
		v.Addr[name] = "$HOME_NET"
	}
	return v
}

// Merge adds or replaces variables from overrides (names with or without the $).
// A name is a port variable when Port already holds it or it ends in "_PORTS" or
// "_PORT"; every other name is an address variable. This follows the name, not the
// value, because "80" or "[1,2]" would parse as either. Merge checks the result
// with Check and changes nothing when it fails.
func (v *Vars) Merge(overrides map[string]string) error {
	next := &Vars{Addr: maps.Clone(v.Addr), Port: maps.Clone(v.Port)}
	if next.Addr == nil {
		next.Addr = map[string]string{}
	}
	if next.Port == nil {
		next.Port = map[string]string{}
	}
	for _, raw := range slices.Sorted(maps.Keys(overrides)) {
		name := strings.TrimPrefix(strings.TrimSpace(raw), "$")
		if !validVarName(name) {
			return fmt.Errorf("variable %q: invalid name (letters, digits and _ only)", raw)
		}
		value := overrides[raw]
		_, isPort := next.Port[name]
		if isPort || strings.HasSuffix(name, "_PORTS") || strings.HasSuffix(name, "_PORT") {
			delete(next.Addr, name)
			next.Port[name] = value
		} else {
			next.Addr[name] = value
		}
	}
	// The overrides first, so that an error names the variable the user wrote
	// rather than a built-in one that refers to it.
	res := newResolver(next)
	for _, raw := range slices.Sorted(maps.Keys(overrides)) {
		name := strings.TrimPrefix(strings.TrimSpace(raw), "$")
		var err error
		if _, isPort := next.Port[name]; isPort {
			_, err = res.portVar(name)
		} else {
			_, err = res.addrVar(name)
		}
		if err != nil {
			return &VarError{Name: raw, Err: err}
		}
	}
	if err := next.Check(); err != nil {
		return err
	}
	v.Addr, v.Port = next.Addr, next.Port
	return nil
}

// VarError is an override Merge could not resolve: Name is as the caller gave it.
type VarError struct {
	Name string
	Err  error
}

func (e *VarError) Error() string { return "variable " + e.Name + ": " + e.Err.Error() }
func (e *VarError) Unwrap() error { return e.Err }

// Check resolves every variable, in name order, and returns the first undefined
// name, cycle or syntax error.
func (v *Vars) Check() error {
	res := newResolver(v)
	for _, name := range slices.Sorted(maps.Keys(v.Addr)) {
		if _, err := res.addrVar(name); err != nil {
			return fmt.Errorf("address variable %s: %w", name, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(v.Port)) {
		if _, err := res.portVar(name); err != nil {
			return fmt.Errorf("port variable %s: %w", name, err)
		}
	}
	return nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
