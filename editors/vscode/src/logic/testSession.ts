// The Test Explorer's work with berth, without VS Code: discovery into a
// tree, a selection of tests into berth/test requests, results onto the
// tree, and test ids into berth/debug params. testing.ts draws it; the
// integration test drives it against the real berth.

import type { DebugParams, DiscoveredTest, TestDiscoverResult, TestParams, TestResult } from './wire';
import { PlainRange, lineRange } from './tests';

/** What a cancellation looks like to a request: VS Code's CancellationToken fits. */
export interface Cancel {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => void): { dispose(): void };
}

/** Sends a request to berth; cancelling sends $/cancelRequest. */
export interface Requester {
  request<R>(method: string, params: object, cancel?: Cancel): Promise<R>;
}

export interface TreeNode {
  id: string;
  label: string;
  kind: string;
  uri?: string;
  range?: PlainRange;
  children: TreeNode[];
}

/**
 * berth/testDiscover's flat list → a forest. A node whose parent is
 * missing is a root, so nothing is lost.
 */
export function discoveryTree(res: TestDiscoverResult): TreeNode[] {
  const byId = new Map<string, TreeNode>();
  const roots: TreeNode[] = [];
  for (const t of res.tests ?? []) {
    if (byId.has(t.id)) continue;
    const n = nodeOf(t);
    byId.set(t.id, n);
    const parent = t.parent ? byId.get(t.parent) : undefined;
    if (parent) parent.children.push(n);
    else roots.push(n);
  }
  return roots;
}

function nodeOf(t: DiscoveredTest): TreeNode {
  const n: TreeNode = { id: t.id, label: t.name || t.id, kind: t.kind, children: [] };
  if (t.location?.uri) {
    n.uri = t.location.uri;
    if (t.kind !== 'file' && t.location.line > 0) n.range = lineRange(t.location.line);
  }
  return n;
}

/** A chosen test: its id, kind and parent chain as the tree knows them. */
export interface Chosen {
  id: string;
  kind: string;
}

/**
 * The berth/test requests that run the chosen tests: none chosen is the
 * whole suite. A test whose ancestor is chosen too is left to it. For Go,
 * whole packages and single tests go in two requests, since one go test
 * has one -run (berth refuses the mix).
 */
export function planRuns(chosen: Chosen[], framework: string, parentOf: (id: string) => string | undefined): Pick<TestParams, 'tests'>[] {
  if (!chosen.length) return [{}];
  const ids = new Set(chosen.map((c) => c.id));
  const kept = chosen.filter((c) => {
    for (let p = parentOf(c.id); p !== undefined; p = parentOf(p)) {
      if (ids.has(p)) return false;
    }
    return true;
  });
  if (framework !== 'go') return [{ tests: kept.map((c) => c.id) }];
  const whole = kept.filter((c) => c.kind === 'package').map((c) => c.id);
  const single = kept.filter((c) => c.kind !== 'package').map((c) => c.id);
  const out: Pick<TestParams, 'tests'>[] = [];
  if (whole.length) out.push({ tests: whole });
  if (single.length) out.push({ tests: single });
  return out;
}

/**
 * Where an id the tree doesn't know goes: a Go subtest under its test
 * ("pkg.TestT/sub" → "pkg.TestT"), a Go test under its package, a pytest
 * node under the id before its last "::" (outside a parametrization).
 */
export function parentId(id: string, framework: string): string | undefined {
  if (framework === 'go') {
    const m = /^(.*?)\.((?:Test|Fuzz|Example).*)$/.exec(id);
    if (!m) return undefined;
    const slash = m[2].lastIndexOf('/');
    return slash >= 0 ? `${m[1]}.${m[2].slice(0, slash)}` : m[1];
  }
  const bracket = id.indexOf('[');
  const base = bracket >= 0 ? id.slice(0, bracket) : id;
  const i = base.lastIndexOf('::');
  return i > 0 ? id.slice(0, i) : undefined;
}

/** A result's name below its parent: "sub" for "pkg.TestT/sub". */
export function leafLabel(name: string): string {
  const i = name.lastIndexOf('/');
  return i >= 0 ? name.slice(i + 1) : name;
}

/** berth/debug params that debug the chosen tests (all, when none). */
export function debugTestParams(framework: string, chosen: Chosen[], workspace?: string): DebugParams {
  let adapter: string;
  switch (framework) {
    case 'pytest':
      adapter = 'debugpy';
      break;
    case 'go':
      adapter = 'delve';
      break;
    default:
      throw new Error(`berth cannot debug ${framework} tests (pytest and go only)`);
  }
  const p: DebugParams = { adapter, test: true };
  if (workspace) p.workspace = workspace;
  const ids = chosen.map((c) => c.id);
  if (adapter === 'delve') {
    if (!ids.length) throw new Error('choose the Go package or tests to debug: dlv test debugs one package');
    const pkgs = new Set(ids.map((id) => (chosen.find((c) => c.id === id)?.kind === 'package' ? id : goPackage(id))));
    if (pkgs.size > 1) throw new Error(`dlv test debugs one package; these are in ${pkgs.size}`);
  }
  if (ids.length) p.tests = ids;
  return p;
}

function goPackage(id: string): string {
  const m = /^(.*?)\.(?:Test|Fuzz|Example)/.exec(id);
  return m ? m[1] : id;
}

/**
 * Runs the chosen tests through berth/test, one request per planned run,
 * and hands each result over as it comes. Stops at the first cancelled or
 * failed request, which it rethrows.
 */
export async function runTests(
  berth: Requester,
  base: TestParams,
  framework: string,
  chosen: Chosen[],
  parentOf: (id: string) => string | undefined,
  onResult: (res: TestResult) => void,
  cancel?: Cancel,
): Promise<TestResult[]> {
  const out: TestResult[] = [];
  for (const run of planRuns(chosen, framework, parentOf)) {
    if (cancel?.isCancellationRequested) break;
    const res = await berth.request<TestResult>('berth/test', { ...base, ...(framework ? { framework } : {}), ...run }, cancel);
    out.push(res);
    onResult(res);
  }
  return out;
}

export interface LiveResult {
  name: string; // "TestAdd", "TestTable/ok"
  status: 'passed' | 'failed' | 'skipped';
}

/**
 * Reads go test's output as berth streams it (test2json's text: "---
 * PASS: TestAdd (0.00s)", indented for subtests) and returns each result
 * as its line completes, so the Test Explorer can show results before
 * berth/test answers. berth's answer stays the authority.
 */
export class GoLiveResults {
  private pending = '';

  feed(chunk: string): LiveResult[] {
    this.pending += chunk;
    const out: LiveResult[] = [];
    let i: number;
    while ((i = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, i);
      this.pending = this.pending.slice(i + 1);
      const m = /^\s*--- (PASS|FAIL|SKIP): (\S+) \(/.exec(line);
      if (m) out.push({ name: m[2], status: m[1] === 'PASS' ? 'passed' : m[1] === 'FAIL' ? 'failed' : 'skipped' });
    }
    return out;
  }
}

/**
 * The one known id a live Go result names: "pkg.Name" among known ids in
 * the chosen packages (all, when none chosen). Ambiguous or unknown names
 * return undefined, and wait for berth's answer.
 */
export function liveGoId(name: string, known: Iterable<string>, packages: string[]): string | undefined {
  let found: string | undefined;
  for (const id of known) {
    if (!id.endsWith('.' + name)) continue;
    const pkg = id.slice(0, id.length - name.length - 1);
    if (packages.length && !packages.includes(pkg)) continue;
    if (found !== undefined) return undefined;
    found = id;
  }
  return found;
}
