package tools

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
)

type sarifLog struct {
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool struct {
		Driver struct {
			Name  string      `json:"name"`
			Rules []sarifRule `json:"rules"`
		} `json:"driver"`
	} `json:"tool"`
	OriginalURIBaseIDs map[string]sarifArtifactLocation `json:"originalUriBaseIds"`
	Artifacts          []struct {
		Location sarifArtifactLocation `json:"location"`
	} `json:"artifacts"`
	Results []sarifResult `json:"results"`
}

type sarifRule struct {
	ID                   string `json:"id"`
	DefaultConfiguration struct {
		Level string `json:"level"`
	} `json:"defaultConfiguration"`
}

type sarifResult struct {
	RuleID    string `json:"ruleId"`
	RuleIndex *int   `json:"ruleIndex"`
	Level     string `json:"level"`
	Kind      string `json:"kind"`
	Message   struct {
		Text      string   `json:"text"`
		Markdown  string   `json:"markdown"`
		Arguments []string `json:"arguments"`
	} `json:"message"`
	Locations []struct {
		PhysicalLocation struct {
			ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
			Region           struct {
				StartLine   int `json:"startLine"`
				StartColumn int `json:"startColumn"`
				EndLine     int `json:"endLine"`
				EndColumn   int `json:"endColumn"`
			} `json:"region"`
		} `json:"physicalLocation"`
	} `json:"locations"`
}

type sarifArtifactLocation struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId"`
	Index     *int   `json:"index"`
}

// ParseSARIF parses a SARIF 2.1.0 log: every run's results, located by their
// first physical location. A relative artifact URI resolves against its
// uriBaseId from the run's originalUriBaseIds (which may chain), else against
// cwd; URIs are percent-decoded and only file URIs name files. Results of
// kind "pass" or "notApplicable" are not findings and are dropped. A result
// with no level takes its rule's default level, else warning. Source is the
// run's tool.driver.name when set, else source.
func ParseSARIF(data []byte, cwd, source string) ([]Diagnostic, error) {
	return parseSARIF(data, cwd, source, SeverityWarning)
}

func parseSARIF(data []byte, cwd, source string, def Severity) ([]Diagnostic, error) {
	if def < SeverityError || def > SeverityHint {
		def = SeverityWarning
	}
	var log sarifLog
	if err := json.Unmarshal(data, &log); err != nil {
		return nil, fmt.Errorf("sarif: %w: %v", ErrBadReport, err)
	}
	if log.Runs == nil {
		return nil, fmt.Errorf("sarif: %w: no runs", ErrBadReport)
	}
	var diags []Diagnostic
	for _, run := range log.Runs {
		src := run.Tool.Driver.Name
		if src == "" {
			src = source
		}
		for _, r := range run.Results {
			if r.Kind == "pass" || r.Kind == "notApplicable" {
				continue
			}
			d := Diagnostic{Code: r.RuleID, Source: src, Severity: def, Message: sarifMessage(r)}
			level := r.Level
			if level == "" {
				level = ruleLevel(run, r)
			}
			if s, ok := sarifSeverity(level); ok {
				d.Severity = s
			}
			if len(r.Locations) > 0 {
				pl := r.Locations[0].PhysicalLocation
				d.File = artifactPath(run, pl.ArtifactLocation, cwd, nil)
				rg := pl.Region
				d.Line, d.Column = positive(rg.StartLine), positive(rg.StartColumn)
				d.EndLine, d.EndColumn = positive(rg.EndLine), positive(rg.EndColumn)
				if d.EndLine == 0 && d.EndColumn > 0 {
					d.EndLine = d.Line // SARIF: endLine defaults to startLine
				}
			}
			diags = append(diags, d)
		}
	}
	return diags, nil
}

func sarifMessage(r sarifResult) string {
	msg := r.Message.Text
	if msg == "" {
		msg = r.Message.Markdown
	}
	for i, a := range r.Message.Arguments {
		msg = strings.ReplaceAll(msg, "{"+strconv.Itoa(i)+"}", a)
	}
	if msg == "" {
		msg = r.RuleID
	}
	return msg
}

func ruleLevel(run sarifRun, r sarifResult) string {
	rules := run.Tool.Driver.Rules
	if r.RuleIndex != nil && *r.RuleIndex >= 0 && *r.RuleIndex < len(rules) {
		return rules[*r.RuleIndex].DefaultConfiguration.Level
	}
	for _, rule := range rules {
		if rule.ID != "" && rule.ID == r.RuleID {
			return rule.DefaultConfiguration.Level
		}
	}
	return ""
}

func sarifSeverity(level string) (Severity, bool) {
	switch level {
	case "error":
		return SeverityError, true
	case "warning":
		return SeverityWarning, true
	case "note":
		return SeverityInformation, true
	case "none":
		return SeverityHint, true
	}
	return 0, false
}

// artifactPath turns an artifact location into an absolute container path,
// or "" when it names no local file. seen holds the uriBaseIds being
// resolved: a cycle's last link resolves against cwd.
func artifactPath(run sarifRun, loc sarifArtifactLocation, cwd string, seen map[string]bool) string {
	if loc.URI == "" && loc.Index != nil && *loc.Index >= 0 && *loc.Index < len(run.Artifacts) {
		loc = run.Artifacts[*loc.Index].Location
	}
	if loc.URI == "" && loc.URIBaseID == "" {
		return ""
	}
	u, err := url.Parse(loc.URI)
	if err != nil {
		return ""
	}
	if u.Scheme != "" {
		if !strings.EqualFold(u.Scheme, "file") {
			return ""
		}
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		return resolve(cwd, p)
	}
	p := u.Path
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	base := cwd
	if b, ok := run.OriginalURIBaseIDs[loc.URIBaseID]; ok && loc.URIBaseID != "" && !seen[loc.URIBaseID] {
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[loc.URIBaseID] = true
		if bp := artifactPath(run, b, cwd, seen); bp != "" {
			base = bp
		}
	}
	if p == "" {
		return resolve(base, ".")
	}
	return resolve(base, p)
}

func positive(n int) int {
	if n < 0 {
		return 0
	}
	return n
}
