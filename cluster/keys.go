package cluster

import "weir/config"

// LoadKeys reads a cluster key file: one base64 key a line (16, 24 or 32 bytes), the
// first encrypts, all decrypt. Errors name the file and the line of a bad key. It is
// the same reader weir check-config uses (config.ReadKeyFile).
func LoadKeys(path string) ([][]byte, error) {
	return config.ReadKeyFile(path)
}
