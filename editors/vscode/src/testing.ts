// berth/testDiscover, berth/test and berth/debug → the Test Explorer. The
// logic is in ./logic/testSession (no vscode there); this file draws it.

import * as vscode from 'vscode';
import { Berth, currentFolder, errorCode, errorMessage, workspaceParam } from './berth';
import { resolvedSessionConfig, SESSION_KEY, SessionInfo } from './logic/debug';
import { Cancel, Chosen, GoLiveResults, Requester, TreeNode, debugTestParams, discoveryTree, leafLabel, liveGoId, parentId, runTests } from './logic/testSession';
import { PlainRange, summaryText, testNode } from './logic/tests';
import { toTerminalText } from './logic/terminal';
import { DebugResult, ErrorCodes, TestDiscoverResult, TestResult } from './logic/wire';

function toRange(r: PlainRange): vscode.Range {
  return new vscode.Range(r.startLine, r.startCharacter, r.endLine, r.endCharacter);
}

export class BerthTests implements vscode.Disposable {
  readonly controller: vscode.TestController;
  private disposables: vscode.Disposable[] = [];
  private framework: string | undefined;
  /** Every item by id, and its parent's id (the tree's, or a result's). */
  private items = new Map<string, vscode.TestItem>();
  private parents = new Map<string, string>();
  private kinds = new Map<string, string>();
  private readonly requester: Requester;

  /**
   * autoDiscover says whether opening the Test Explorer may list the tests,
   * which starts berth and the container: only where berth belongs.
   */
  constructor(private readonly berth: Berth, autoDiscover: () => boolean = () => berth.running) {
    this.requester = { request: (m, p, c) => berth.request(m, p, c as vscode.CancellationToken | undefined) };
    this.controller = vscode.tests.createTestController('berth', 'berth (container)');
    // The tree appears before any run: discovered when the Test Explorer
    // first asks, and again on its refresh button.
    this.controller.resolveHandler = async (item) => {
      if (!item && autoDiscover()) await this.discover().catch(() => undefined);
    };
    this.controller.refreshHandler = async (token) => {
      await this.discover(token).catch((e) => this.discoveryFailed(e));
    };
    this.disposables.push(
      this.controller,
      this.controller.createRunProfile('Run in container', vscode.TestRunProfileKind.Run, async (req, token) => {
        await this.run(req, token);
      }, true),
      this.controller.createRunProfile('Debug in container', vscode.TestRunProfileKind.Debug, (req, token) => this.debug(req, token), true),
    );
  }

  private discoveryFailed(e: unknown): void {
    if (errorCode(e) === ErrorCodes.RequestCancelled) return;
    void vscode.window.showWarningMessage(`berth: could not list the tests: ${errorMessage(e)}`);
  }

  /** Lists the tests (berth/testDiscover) and replaces the tree. */
  async discover(token?: vscode.CancellationToken): Promise<void> {
    const res = await this.requester.request<TestDiscoverResult>('berth/testDiscover', workspaceParam(currentFolder()), token as Cancel | undefined);
    this.framework = res.framework;
    this.items.clear();
    this.parents.clear();
    this.kinds.clear();
    const build = (n: TreeNode, parent?: string): vscode.TestItem => {
      const item = this.controller.createTestItem(n.id, n.label, n.uri ? vscode.Uri.parse(n.uri) : undefined);
      if (n.range) item.range = toRange(n.range);
      this.items.set(n.id, item);
      this.kinds.set(n.id, n.kind);
      if (parent) this.parents.set(n.id, parent);
      item.children.replace(n.children.map((c) => build(c, n.id)));
      return item;
    };
    this.controller.items.replace(discoveryTree(res).map((n) => build(n)));
  }

  private parentOf = (id: string): string | undefined => this.parents.get(id);

  private chosen(request: vscode.TestRunRequest): Chosen[] {
    return (request.include ?? []).map((i) => ({ id: i.id, kind: this.kinds.get(i.id) ?? 'test' }));
  }

  /** Runs the whole suite, or the request's items by id, reporting each result file as it comes. */
  async run(request: vscode.TestRunRequest, token?: vscode.CancellationToken): Promise<TestResult[] | undefined> {
    if (!this.framework) {
      try {
        await this.discover(token);
      } catch (e) {
        this.discoveryFailed(e);
      }
    }
    const run = this.controller.createTestRun(request, 'berth', true);
    const queued: vscode.TestItem[] = request.include ? [...request.include] : [...this.items.values()].filter((i) => i.children.size === 0);
    for (const item of queued) run.started(item);
    const folder = currentFolder();
    const live = this.streamGoResults(run, request);
    try {
      const results = await runTests(
        this.requester,
        workspaceParam(folder),
        this.framework ?? '',
        this.chosen(request),
        this.parentOf,
        (res) => this.report(run, res),
        token as Cancel | undefined,
      );
      const last = results[results.length - 1];
      if (last) {
        const msg = `berth: ${last.framework}: ${results.map((r) => summaryText(r.summary)).join('; ')}`;
        if (results.some((r) => r.summary && (r.summary.failed || r.summary.errors))) void vscode.window.showWarningMessage(msg);
        else void vscode.window.setStatusBarMessage(msg, 8000);
      }
      return results;
    } catch (e) {
      if (errorCode(e) === ErrorCodes.RequestCancelled || token?.isCancellationRequested) {
        run.appendOutput('berth: run cancelled; its process in the container was killed.\r\n');
      } else {
        run.appendOutput(`berth: ${errorMessage(e)}\r\n`);
        for (const item of queued) run.errored(item, new vscode.TestMessage(errorMessage(e)));
        void vscode.window.showErrorMessage(`berth: tests: ${errorMessage(e)}`);
      }
      return undefined;
    } finally {
      live?.dispose();
      run.end();
    }
  }

  /**
   * Go results as they arrive: go test's output streams (unclaimed) before
   * berth/test answers, and its "--- PASS: TestX" lines name the results.
   * A process whose first output doesn't look like go test's is another's.
   */
  private streamGoResults(run: vscode.TestRun, request: vscode.TestRunRequest): vscode.Disposable | undefined {
    if (this.framework !== 'go') return undefined;
    const others = new Set<string>();
    const parsers = new Map<string, GoLiveResults>();
    const pkgs = (request.include ?? []).map((i) => (this.kinds.get(i.id) === 'package' ? i.id : this.parents.get(i.id) ?? i.id));
    return this.berth.onUnclaimedOutput((o) => {
      if (others.has(o.pid)) return;
      let p = parsers.get(o.pid);
      if (!p) {
        if (!/^(=== RUN|--- |\?|ok|PASS|FAIL)/m.test(o.text)) {
          others.add(o.pid);
          return;
        }
        p = new GoLiveResults();
        parsers.set(o.pid, p);
      }
      for (const r of p.feed(o.text)) {
        const id = liveGoId(r.name, this.items.keys(), pkgs);
        const item = id && this.items.get(id);
        if (!item) continue;
        if (r.status === 'passed') run.passed(item);
        else if (r.status === 'skipped') run.skipped(item);
        else run.failed(item, new vscode.TestMessage('failed (details when the run ends)'));
      }
    });
  }

  private report(run: vscode.TestRun, res: TestResult): void {
    // The run's output streamed before berth answered (to the output
    // channel); replay it into the test run.
    this.berth.router.claim(res.pid, {
      output: (_s, text) => run.appendOutput(toTerminalText(text)),
      exit: () => undefined,
    });
    this.berth.router.release(res.pid);
    for (const t of res.tests ?? []) {
      const node = testNode(t);
      const item = this.itemFor(t.id, leafLabel(t.name || t.id), node.uri);
      if (node.range && !item.range) item.range = toRange(node.range);
      const message = () => {
        const m = new vscode.TestMessage(node.message ?? node.outcome);
        if (node.uri && node.range) m.location = new vscode.Location(vscode.Uri.parse(node.uri), toRange(node.range));
        return m;
      };
      switch (node.outcome) {
        case 'passed':
          run.passed(item, node.durationMs);
          break;
        case 'skipped':
          run.skipped(item);
          break;
        case 'failed':
          run.failed(item, message(), node.durationMs);
          break;
        default:
          run.errored(item, message(), node.durationMs);
      }
    }
  }

  /** The item for a result's id: the discovered one, else a new one under its parent. */
  private itemFor(id: string, label: string, uri?: string): vscode.TestItem {
    const known = this.items.get(id);
    if (known) return known;
    const pid = parentId(id, this.framework ?? '');
    const parent = pid ? this.items.get(pid) ?? this.itemFor(pid, leafLabel(pid.replace(/^.*(::|\.(?=Test|Fuzz|Example))/, '')), uri) : undefined;
    const item = this.controller.createTestItem(id, label, uri ? vscode.Uri.parse(uri) : undefined);
    this.items.set(id, item);
    if (pid) this.parents.set(id, pid);
    (parent ? parent.children : this.controller.items).add(item);
    return item;
  }

  /** Debugs the chosen tests through berth/debug test: true (debugpy runs pytest, delve runs dlv test). */
  async debug(request: vscode.TestRunRequest, token: vscode.CancellationToken): Promise<void> {
    if (!this.framework) await this.discover(token).catch((e) => this.discoveryFailed(e));
    const folder = currentFolder();
    let res: DebugResult;
    let adapter: string;
    try {
      const params = debugTestParams(this.framework ?? '', this.chosen(request), workspaceParam(folder).workspace);
      adapter = params.adapter;
      res = await this.berth.requestWithProgress<DebugResult>('berth: starting the test debugger', 'berth/debug', params);
    } catch (e) {
      if (errorCode(e) !== ErrorCodes.RequestCancelled) void vscode.window.showErrorMessage(`berth: debug tests: ${errorMessage(e)}`);
      return;
    }
    const run = this.controller.createTestRun(request, 'berth: debug', false);
    for (const item of request.include ?? []) run.started(item);
    this.berth.router.claim(res.pid, {
      output: (_s, text) => run.appendOutput(toTerminalText(text)),
      exit: (p) => run.appendOutput(`\r\nberth: the tests exited with code ${p.code}\r\n`),
    });
    const cfg = resolvedSessionConfig({ name: `berth: debug ${request.include?.map((i) => i.label).join(', ') || 'tests'}` }, res, adapter);
    const info = cfg[SESSION_KEY] as SessionInfo;
    const ended = new Promise<void>((resolve) => {
      const sub = vscode.debug.onDidTerminateDebugSession((s) => {
        if ((s.configuration[SESSION_KEY] as SessionInfo | undefined)?.pid === info.pid) {
          sub.dispose();
          resolve();
        }
      });
      token.onCancellationRequested(() => {
        void this.berth.request('berth/signal', { pid: res.pid, signal: 'KILL' }).catch(() => undefined);
        sub.dispose();
        resolve();
      });
    });
    const ok = await vscode.debug.startDebugging(folder, cfg as vscode.DebugConfiguration);
    if (!ok) {
      void this.berth.request('berth/signal', { pid: res.pid, signal: 'KILL' }).catch(() => undefined);
      run.end();
      return;
    }
    await ended;
    this.berth.router.release(res.pid);
    run.end();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
