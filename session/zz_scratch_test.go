package session

import (
	"testing"

	"github.com/distribution/reference"
)

func TestScratchRef(t *testing.T) {
	for _, ws := range []string{"/x/proj", "/x/a.-b", "/x/my..proj", "/x/" + "abcdefghijabcdefghijabcdefghi.xyz"} {
		ref := "berth-build/" + InstanceName(ws) + ":abc"
		_, err := reference.ParseNormalizedNamed(ref)
		t.Logf("%s -> %v", ref, err)
	}
}
