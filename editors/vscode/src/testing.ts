// berth/test → the Test Explorer.

import * as vscode from 'vscode';
import { Berth, currentFolder, errorMessage, workspaceParam } from './berth';
import { buildTestTree, filesForRun, summaryText, NO_FILE, PlainRange } from './logic/tests';
import { toTerminalText } from './logic/terminal';
import type { TestResult } from './logic/wire';

function toRange(r: PlainRange): vscode.Range {
  return new vscode.Range(r.startLine, r.startCharacter, r.endLine, r.endCharacter);
}

export class BerthTests implements vscode.Disposable {
  readonly controller: vscode.TestController;
  private disposables: vscode.Disposable[] = [];

  constructor(private readonly berth: Berth) {
    this.controller = vscode.tests.createTestController('berth', 'berth (container)');
    this.controller.refreshHandler = async (token) => {
      await this.run(new vscode.TestRunRequest(), token);
    };
    this.disposables.push(
      this.controller,
      this.controller.createRunProfile('Run in container', vscode.TestRunProfileKind.Run, async (req, token) => {
        await this.run(req, token);
      }, true),
    );
  }

  /** Runs the suite, or the files of the request's items, and reports every test. */
  async run(request: vscode.TestRunRequest, token?: vscode.CancellationToken): Promise<TestResult | undefined> {
    const folder = currentFolder();
    const paths: string[] = [];
    for (const item of request.include ?? []) {
      if (item.uri && item.uri.scheme === 'file') paths.push(item.uri.fsPath);
    }
    const params: { workspace?: string; files?: string[] } = { ...workspaceParam(folder) };
    if (paths.length) params.files = filesForRun(paths);
    const run = this.controller.createTestRun(request, 'berth', true);
    let res: TestResult;
    try {
      res = await this.berth.requestWithProgress<TestResult>('berth: running tests', 'berth/test', params);
    } catch (e) {
      run.appendOutput(`berth: ${errorMessage(e)}\r\n`);
      run.end();
      if (!token?.isCancellationRequested) void vscode.window.showErrorMessage(`berth: tests: ${errorMessage(e)}`);
      return undefined;
    }
    // The run's output streamed before berth answered (to the output
    // channel); replay it into the test run.
    this.berth.router.claim(res.pid, {
      output: (_s, text) => run.appendOutput(toTerminalText(text)),
      exit: () => undefined,
    });
    this.berth.router.release(res.pid);
    this.report(run, res, folder?.uri.fsPath, !paths.length);
    run.end();
    const msg = `berth: ${res.framework}: ${summaryText(res.summary)}`;
    if (res.summary && (res.summary.failed || res.summary.errors)) void vscode.window.showWarningMessage(msg);
    else void vscode.window.setStatusBarMessage(msg, 8000);
    return res;
  }

  private report(run: vscode.TestRun, res: TestResult, root: string | undefined, whole: boolean): void {
    const tree = buildTestTree(res, root);
    if (whole) this.controller.items.replace([]);
    for (const f of tree) {
      const fileUri = f.uri ? vscode.Uri.parse(f.uri) : undefined;
      let fileItem = this.controller.items.get(f.id);
      if (!fileItem) {
        fileItem = this.controller.createTestItem(f.id, f.label, fileUri);
        this.controller.items.add(fileItem);
      }
      const children: vscode.TestItem[] = [];
      for (const t of f.tests) {
        const uri = t.uri ? vscode.Uri.parse(t.uri) : undefined;
        const item = this.controller.createTestItem(t.id, t.label, uri);
        if (t.range) item.range = toRange(t.range);
        children.push(item);
        const duration = t.durationMs;
        const message = () => {
          const m = new vscode.TestMessage(t.message ?? t.outcome);
          if (uri && t.range) m.location = new vscode.Location(uri, toRange(t.range));
          return m;
        };
        run.started(item);
        switch (t.outcome) {
          case 'passed':
            run.passed(item, duration);
            break;
          case 'skipped':
            run.skipped(item);
            break;
          case 'failed':
            run.failed(item, message(), duration);
            break;
          default:
            run.errored(item, message(), duration);
        }
      }
      fileItem.children.replace(children);
      if (f.id === NO_FILE) fileItem.sortText = '\uffff';
    }
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
