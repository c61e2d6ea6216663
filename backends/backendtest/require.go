// Package backendtest holds what every backend's tests share: the rule for
// skipping or failing when a daemon is missing, cleanup of test instances,
// and the conformance suite each backends.Backend must pass.
package backendtest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
)

// LabelTest marks instances made by tests, so sweeps can find leftovers.
const LabelTest = "berth.test"

// Required reports whether tests must fail rather than skip when backend's
// daemon is missing: under CI=true, or when BERTH_REQUIRE names it (a comma
// list, or "all").
func Required(backend string) bool {
	if os.Getenv("CI") == "true" {
		return true
	}
	for _, name := range strings.Split(os.Getenv("BERTH_REQUIRE"), ",") {
		name = strings.TrimSpace(name)
		if name == backend || name == "all" {
			return true
		}
	}
	return false
}

// Need pings b and skips t when the daemon does not answer, or fails t when
// the daemon is Required. A green run that skipped the real thing would be
// a lie, so CI never skips.
func Need(t testing.TB, b backends.Backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Ping(ctx); err != nil {
		if Required(b.Name()) {
			t.Fatalf("%s is required here (CI=true or BERTH_REQUIRE) but not usable: %v", b.Name(), err)
		}
		t.Skipf("%s not available: %v", b.Name(), err)
	}
}

// Image returns the test image: $BERTH_TEST_IMAGE or the busybox image that
// testdata/images/busybox.sh builds.
func Image() string {
	if img := os.Getenv("BERTH_TEST_IMAGE"); img != "" {
		return img
	}
	return "berth-test/busybox:1"
}

// IncusImage returns the Incus test image: $BERTH_TEST_INCUS_IMAGE or the
// alias testdata/images/busybox.sh imports (Incus reads "a:b" as remote a,
// so the alias has no colon).
func IncusImage() string {
	if img := os.Getenv("BERTH_TEST_INCUS_IMAGE"); img != "" {
		return img
	}
	return "berth-test/busybox-1"
}

// Sweep removes instances left behind by earlier test runs: those whose
// workspace was a temp dir that is gone, and test-labelled ones older than
// an hour. Packages test in parallel, so it must spare instances that
// another package's tests are using. Call it from TestMain; it ignores an
// unreachable daemon.
func Sweep(ctx context.Context, b backends.Backend) {
	list, err := b.List(ctx)
	if err != nil {
		return
	}
	tmp := os.TempDir()
	for _, inst := range list {
		_, statErr := os.Stat(inst.Workspace)
		gone := os.IsNotExist(statErr) && isUnder(inst.Workspace, tmp)
		stale := inst.Labels[LabelTest] != "" && !inst.Created.IsZero() && time.Since(inst.Created) > time.Hour
		if gone || stale {
			_ = b.Remove(ctx, inst.ID)
		}
	}
}

func isUnder(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && !strings.HasPrefix(rel, "..") && !slices.Contains([]string{".", ""}, rel)
}
