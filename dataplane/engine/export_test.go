package engine

// ReloadKeyFields names the config.Config fields (Go paths such as "GWLB.Listen")
// that reloads handle, either way.
func ReloadKeyFields() []string {
	var out []string
	for _, k := range append(append([]configKey{}, reloadKeys...), restartKeys...) {
		out = append(out, k.field)
	}
	return out
}
