// The extension's logic against the real berth and Docker, without VS Code:
// the Test Explorer's discovery, runs by id, cancel and test debugging, and
// the Ports view's model, driven through the same modules testing.ts and
// ports.ts use. It needs BERTH_BIN (default ../../bin/berth, which
// `make vscode-test` builds) and the berth-test/debian:2 image; without
// them it skips, except under CI=true or BERTH_REQUIRE, where it fails.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as cp from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { CancellationTokenSource, MessageConnection, ResponseError, StreamMessageReader, StreamMessageWriter, createMessageConnection } from 'vscode-jsonrpc/node';
import { AutoForwardTracker, PortsModel } from '../logic/ports';
import { Cancel, Requester, debugTestParams, discoveryTree, parentId, runTests } from '../logic/testSession';
import { resolvedSessionConfig } from '../logic/debug';
import { ErrorCodes, InitializeResult, PortsChangedParams, TestDiscoverResult, TestResult } from '../logic/wire';

const repo = path.resolve(__dirname, '..', '..', '..', '..');
const bin = process.env.BERTH_BIN || path.join(repo, 'bin', 'berth');
const image = process.env.BERTH_TEST_DEBIAN_IMAGE || 'berth-test/debian:2';
const required = process.env.CI === 'true' || !!process.env.BERTH_REQUIRE;

interface Note {
  method: string;
  params: any;
}

/** berth --stdio with a JSON-RPC connection, recording notifications. */
class BerthProcess implements Requester {
  readonly proc: cp.ChildProcess;
  readonly conn: MessageConnection;
  readonly notes: Note[] = [];
  private waiters: (() => void)[] = [];
  stderr = '';

  constructor() {
    this.proc = cp.spawn(bin, ['--stdio', '--backend', 'docker'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr!.on('data', (d) => (this.stderr = (this.stderr + d).slice(-20000)));
    this.conn = createMessageConnection(new StreamMessageReader(this.proc.stdout!), new StreamMessageWriter(this.proc.stdin!));
    this.conn.onNotification((method, params) => {
      this.notes.push({ method, params });
      for (const w of this.waiters.splice(0)) w();
    });
    // berth asks for trust and shows documents; a test answers plainly.
    this.conn.onRequest(() => null);
    this.conn.listen();
  }

  request<R>(method: string, params: object, cancel?: Cancel): Promise<R> {
    if (!cancel) return this.conn.sendRequest<R>(method, params);
    const src = new CancellationTokenSource();
    cancel.onCancellationRequested(() => src.cancel());
    return this.conn.sendRequest<R>(method, params, src.token);
  }

  /** Waits for a notification that satisfies ok. */
  async waitNote(ok: (n: Note) => boolean, ms = 60000, from = 0): Promise<Note> {
    const deadline = Date.now() + ms;
    for (;;) {
      const n = this.notes.slice(from).find(ok);
      if (n) return n;
      if (Date.now() > deadline) throw new Error(`no matching notification in ${ms} ms; berth's log:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 500);
      });
    }
  }

  async close(): Promise<void> {
    await this.conn.sendRequest('shutdown').catch(() => undefined);
    this.conn.sendNotification('exit');
    const exited = new Promise((r) => this.proc.once('exit', r));
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 20000);
    await exited;
    clearTimeout(t);
    this.conn.dispose();
  }
}

function code(e: unknown): number | undefined {
  return e instanceof ResponseError ? e.code : undefined;
}

/** A cancellation a test triggers by hand. */
function canceller(): Cancel & { cancel(): void } {
  let cancelled = false;
  const listeners: (() => void)[] = [];
  return {
    get isCancellationRequested() {
      return cancelled;
    },
    onCancellationRequested(l: () => void) {
      listeners.push(l);
      return { dispose() {} };
    },
    cancel() {
      cancelled = true;
      for (const l of listeners) l();
    },
  };
}

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

test('the Test Explorer and Ports logic against the real berth', { timeout: 10 * 60 * 1000 }, async (t) => {
  if (!fs.existsSync(bin)) {
    if (required) assert.fail(`no berth binary at ${bin}: run make build, or set BERTH_BIN`);
    t.skip(`no berth binary at ${bin} (make build)`);
    return;
  }
  const ws = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'berth-vscode-')));
  fs.cpSync(path.join(repo, 'testdata', 'workspaces', 'pyproj'), ws, { recursive: true });
  fs.writeFileSync(path.join(ws, 'tests', 'test_cls.py'), 'class TestC:\n    def test_a(self):\n        assert True\n\n    def test_b(self):\n        assert 1 == 2\n');
  fs.writeFileSync(path.join(ws, 'tests', 'test_slow.py'), 'import time\n\n\ndef test_slow():\n    print("SLOW STARTED", flush=True)\n    time.sleep(300)\n');
  const b = new BerthProcess();
  try {
    const init = await b.conn.sendRequest<InitializeResult>('initialize', {
      processId: process.pid,
      rootUri: `file://${ws}`,
      capabilities: { window: { showDocument: { support: true } } },
      initializationOptions: { image, trust: true },
    });
    b.conn.sendNotification('initialized', {});
    try {
      await b.request('berth/up', {});
    } catch (e) {
      const c = code(e);
      if (!required && (c === ErrorCodes.BackendUnavailable || c === ErrorCodes.ImageNotFound)) {
        t.skip(`Docker or ${image} missing (testdata/images/debian.sh docker): ${(e as Error).message}`);
        return;
      }
      throw e;
    }

    await t.test('discovery: files, classes and tests at their lines, before any run', async () => {
      const res = await b.request<TestDiscoverResult>('berth/testDiscover', {});
      assert.equal(res.framework, 'pytest');
      const roots = discoveryTree(res);
      const cls = roots.find((r) => r.id === 'tests/test_cls.py');
      assert.ok(cls, `no tests/test_cls.py in ${roots.map((r) => r.id)}`);
      assert.equal(cls.uri, `file://${ws}/tests/test_cls.py`);
      assert.deepEqual(cls.children.map((c) => [c.id, c.kind]), [['tests/test_cls.py::TestC', 'class']]);
      assert.deepEqual(cls.children[0].children.map((c) => [c.label, c.range?.startLine]), [['test_a', 1], ['test_b', 4]]);
    });

    const parents = (id: string) => parentId(id, 'pytest');
    await t.test('run a class by its node id', async () => {
      const seen: TestResult[] = [];
      await runTests(b, {}, 'pytest', [{ id: 'tests/test_cls.py::TestC', kind: 'class' }], parents, (r) => seen.push(r));
      assert.equal(seen.length, 1);
      const got = (seen[0].tests ?? []).map((x) => [x.id, x.status]).sort();
      assert.deepEqual(got, [['tests/test_cls.py::TestC::test_a', 'passed'], ['tests/test_cls.py::TestC::test_b', 'failed']]);
    });

    await t.test('Stop cancels the run and kills it in the container', async () => {
      const mark = b.notes.length;
      const cancel = canceller();
      const run = runTests(b, {}, 'pytest', [{ id: 'tests/test_slow.py::test_slow', kind: 'test' }], parents, () => undefined, cancel);
      run.catch(() => undefined); // awaited below; not unhandled meanwhile
      // pytest captures the test's output: look for the process instead.
      const running = async () =>
        (await b.request<{ stdout: string }>('berth/run', { argv: ['sh', '-c', 'ps -eo args | grep "[t]est_slow" || true'] })).stdout.trim() !== '';
      const deadline = Date.now() + 60000;
      while (!(await running())) {
        assert.ok(Date.now() < deadline, 'the slow test never started');
        await new Promise((r) => setTimeout(r, 300));
      }
      const started = Date.now();
      cancel.cancel();
      await assert.rejects(run, (e: unknown) => code(e) === ErrorCodes.RequestCancelled);
      const exit = await b.waitNote((n) => n.method === 'berth/exit' && typeof n.params?.pid === 'string', 20000, mark);
      assert.ok(exit.params.pid);
      assert.ok(Date.now() - started < 20000);
      assert.equal(await running(), false, 'the test process still runs in the container');
    });

    await t.test('Debug starts pytest under debugpy for the chosen test', async () => {
      const params = debugTestParams('pytest', [{ id: 'tests/test_calc.py::test_add', kind: 'test' }], ws);
      const res = await b.request<any>('berth/debug', params);
      try {
        assert.equal(res.attach?.type, 'debugpy');
        const cfg = resolvedSessionConfig({ name: 'berth: debug test_add' }, res, params.adapter);
        assert.equal(cfg.type, 'berth');
        assert.equal(cfg.request, 'attach');
        assert.ok(JSON.stringify(cfg.pathMappings).includes(ws));
      } finally {
        await b.request('berth/signal', { pid: res.pid, signal: 'KILL' }).catch(() => undefined);
      }
    });

    const methods = init.capabilities?.berth?.methods ?? [];
    await t.test('Ports: a server started inside is detected, forwarded and reachable', { skip: !methods.includes('berth/ports') && 'this berth has no berth/ports' }, async () => {
      const mark = b.notes.length;
      const srv = await b.request<{ pid: string }>('berth/exec', { argv: ['python3', '-m', 'http.server', '8765', '--bind', '0.0.0.0'] });
      try {
        const note = await b.waitNote((n) => n.method === 'berth/portsChanged' && (n.params as PortsChangedParams).ports?.some((p) => p.port === 8765) === true, 60000, mark);
        const tracker = new AutoForwardTracker();
        const actions = tracker.changes(note.params as PortsChangedParams);
        const model = new PortsModel(b, ws);
        const rows = await model.refresh();
        const row = rows.find((r) => r.containerPort === 8765);
        assert.ok(row, `no row for 8765 in ${JSON.stringify(rows)}`);
        if (row.hostPort) {
          // Auto-forwarded (the default onAutoForward is notify).
          assert.ok(actions.some((a) => a.kind === 'notify' && a.port.port === 8765), JSON.stringify(actions));
          assert.equal(await get(`http://127.0.0.1:${row.hostPort}/`), 200);
          await model.stop(row.tunnelId!);
          assert.ok(!model.rows.find((r) => r.containerPort === 8765)?.hostPort, 'still forwarded after stop');
        }
        const f = await model.forward(8765);
        assert.equal(await get(`http://127.0.0.1:${f.hostPort}/`), 200);
      } finally {
        await b.request('berth/signal', { pid: srv.pid, signal: 'KILL' }).catch(() => undefined);
      }
    });
  } finally {
    await b.request('berth/down', { remove: true }).catch(() => undefined);
    await b.close();
    fs.rmSync(ws, { recursive: true, force: true });
  }
});
