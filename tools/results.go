package tools

// TestStatus is the outcome of one test case.
type TestStatus string

// The outcomes a runner can report.
const (
	Passed  TestStatus = "passed"
	Failed  TestStatus = "failed"
	Skipped TestStatus = "skipped"
	Errored TestStatus = "error"
)

// TestCase is one test's result, in the runner's own terms.
type TestCase struct {
	// ID is stable across runs: "file::Class::name" for pytest (its node
	// id), "pkg/path.TestName" for go.
	ID         string
	Name       string
	Status     TestStatus
	DurationMs int64
	// Message is the first lines of the failure, error or skip reason;
	// empty when the test passed.
	Message string
	// File is the absolute container path of the test's source, "" if
	// unknown.
	File string
	// Line is 1-based: the failing line when known, else the test's
	// definition line; 0 if unknown.
	Line int
}

// Summary counts a run's cases by status.
type Summary struct {
	Passed, Failed, Skipped, Errors int
	DurationMs                      int64
}

// count fills in the counts of s from cases.
func count(s Summary, cases []TestCase) Summary {
	for _, c := range cases {
		switch c.Status {
		case Passed:
			s.Passed++
		case Failed:
			s.Failed++
		case Skipped:
			s.Skipped++
		case Errored:
			s.Errors++
		}
	}
	return s
}

// worse reports whether status a outranks b when one test reports twice.
func worse(a, b TestStatus) bool {
	rank := map[TestStatus]int{Passed: 0, Skipped: 1, Failed: 2, Errored: 3}
	return rank[a] > rank[b]
}
