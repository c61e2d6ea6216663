// berth/test results → a plain tree for the Test Explorer, with 0-based
// ranges (berth's locations are 1-based lines).

import type { TestInfo, TestResult, TestSummary } from './wire';

export type Outcome = 'passed' | 'failed' | 'skipped' | 'errored';

export interface PlainRange {
  startLine: number; // 0-based
  startCharacter: number;
  endLine: number;
  endCharacter: number;
}

export interface TestNode {
  id: string;
  label: string;
  uri?: string; // host file URI
  range?: PlainRange;
  outcome: Outcome;
  message?: string;
  durationMs: number;
}

export interface FileNode {
  id: string; // the file URI, or NO_FILE
  label: string;
  uri?: string;
  tests: TestNode[];
}

/** The group of tests without a location. */
export const NO_FILE = 'berth:no-location';

/** berth's test status → the Test Explorer's outcome. */
export function outcomeOf(status: string): Outcome {
  switch (status) {
    case 'passed':
      return 'passed';
    case 'failed':
      return 'failed';
    case 'skipped':
      return 'skipped';
    default:
      return 'errored'; // "error", or anything unknown
  }
}

/** A 1-based line → a 0-based, zero-width range at the line's start. */
export function lineRange(line1: number): PlainRange {
  const l = Math.max(0, Math.floor(line1) - 1);
  return { startLine: l, startCharacter: 0, endLine: l, endCharacter: 0 };
}

/** The path part of a file URI, percent-decoded (for labels). */
export function uriPath(uri: string): string {
  const m = /^file:\/\/[^/]*(\/.*)$/i.exec(uri);
  const p = m ? m[1] : uri;
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}

/** A file's label: its path relative to root (a host path) when under it. */
export function fileLabel(uri: string, root?: string): string {
  let p = uriPath(uri);
  if (/^\/[A-Za-z]:\//.test(p)) p = p.slice(1); // file:///c:/… on Windows
  if (root) {
    const r = root.replace(/[\\/]+$/, '').replace(/\\/g, '/');
    const pp = p.replace(/\\/g, '/');
    if (pp.toLowerCase().startsWith(r.toLowerCase() + '/')) return pp.slice(r.length + 1);
  }
  return p;
}

export function testNode(t: TestInfo): TestNode {
  const n: TestNode = {
    id: t.id,
    label: t.name || t.id,
    outcome: outcomeOf(t.status),
    durationMs: t.durationMs ?? 0,
  };
  if (t.message) n.message = t.message;
  if (t.location && t.location.uri) {
    n.uri = t.location.uri;
    if (t.location.line > 0) n.range = lineRange(t.location.line);
  }
  return n;
}

/**
 * Groups a run's tests by file, in the order files first appear; tests
 * without a location go into a last NO_FILE group. Test ids stay berth's
 * (unique within a run); a repeated id gets a "#2" suffix.
 */
export function buildTestTree(res: TestResult, root?: string): FileNode[] {
  const files = new Map<string, FileNode>();
  const seen = new Map<string, number>();
  for (const t of res.tests ?? []) {
    const node = testNode(t);
    const count = (seen.get(node.id) ?? 0) + 1;
    seen.set(node.id, count);
    if (count > 1) node.id = `${node.id}#${count}`;
    const key = node.uri ?? NO_FILE;
    let f = files.get(key);
    if (!f) {
      f = node.uri
        ? { id: node.uri, label: fileLabel(node.uri, root), uri: node.uri, tests: [] }
        : { id: NO_FILE, label: '(no location)', tests: [] };
      files.set(key, f);
    }
    f.tests.push(node);
  }
  const out = [...files.values()];
  out.sort((a, b) => (a.id === NO_FILE ? 1 : 0) - (b.id === NO_FILE ? 1 : 0));
  return out;
}

/** "3 passed, 2 failed, 1 skipped, 1 error in 41 ms". */
export function summaryText(s: TestSummary | undefined): string {
  if (!s) return 'no summary';
  const parts = [`${s.passed} passed`];
  if (s.failed) parts.push(`${s.failed} failed`);
  if (s.skipped) parts.push(`${s.skipped} skipped`);
  if (s.errors) parts.push(`${s.errors} error${s.errors === 1 ? '' : 's'}`);
  return `${parts.join(', ')} in ${s.durationMs} ms`;
}

/**
 * What to pass as berth/test's `files` for a selection of host file paths:
 * each file once, and a Go test file's directory (go test takes packages).
 */
export function filesForRun(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let f = p;
    if (/_test\.go$/.test(f)) f = f.replace(/[\\/][^\\/]*$/, '') || f;
    if (!out.includes(f)) out.push(f);
  }
  return out;
}
