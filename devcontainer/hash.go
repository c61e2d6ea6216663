package devcontainer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
)

// hashVersion changes whenever the meaning of a hashed field does, so that
// berth recreates containers made under the old meaning.
const hashVersion = "berth devcontainer hash v1\x00"

// computeHash hashes the resolved config, not the file's bytes, so that
// reformatting or editing comments keeps the container. inputs are the
// contents of the build inputs (the Dockerfile).
func computeHash(c *Config, inputs ...[]byte) string {
	v := *c
	v.Hash = ""
	v.Unknown = nil // ignored keys change nothing in the container
	v.Berth.Unknown = nil
	// A changed limit is applied to the running container, not by a new one.
	v.Berth.Limits = nil
	// encoding/json sorts map keys, so this is canonical. It cannot fail:
	// every value is a string, bool, finite float64 or a container of them.
	b, err := json.Marshal(v)
	if err != nil {
		panic("devcontainer: hashing config: " + err.Error())
	}
	h := sha256.New()
	h.Write([]byte(hashVersion))
	// Length prefixes keep the config and the inputs from running together.
	for _, part := range append([][]byte{b}, inputs...) {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(part))))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}
