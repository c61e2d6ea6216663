import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cancel, GoLiveResults, Requester, debugTestParams, discoveryTree, leafLabel, liveGoId, parentId, planRuns, runTests } from '../logic/testSession';
import type { TestDiscoverResult, TestResult } from '../logic/wire';

const U = 'file:///home/me/p/tests/test_calc.py';
const discovered: TestDiscoverResult = {
  framework: 'pytest',
  tests: [
    { id: 'tests/test_calc.py', name: 'test_calc.py', kind: 'file', location: { uri: U, line: 1 } },
    { id: 'tests/test_calc.py::TestC', name: 'TestC', kind: 'class', parent: 'tests/test_calc.py', location: { uri: U, line: 10 } },
    { id: 'tests/test_calc.py::TestC::test_y', name: 'test_y', kind: 'test', parent: 'tests/test_calc.py::TestC', location: { uri: U, line: 11 } },
    { id: 'tests/test_calc.py::test_add', name: 'test_add', kind: 'test', parent: 'tests/test_calc.py', location: { uri: U, line: 3 } },
    { id: 'orphan.py::test_o', name: 'test_o', kind: 'test', parent: 'orphan.py' },
    { id: 'tests/test_calc.py::test_add', name: 'dup', kind: 'test', parent: 'tests/test_calc.py' },
  ],
};

test('discovery becomes a forest at 0-based lines', () => {
  const roots = discoveryTree(discovered);
  assert.deepEqual(roots.map((r) => r.id), ['tests/test_calc.py', 'orphan.py::test_o']);
  const file = roots[0];
  assert.equal(file.range, undefined); // a file item spans the file
  assert.deepEqual(file.children.map((c) => [c.id, c.range?.startLine]), [['tests/test_calc.py::TestC', 9], ['tests/test_calc.py::test_add', 2]]);
  assert.deepEqual(file.children[0].children.map((c) => c.label), ['test_y']);
  assert.deepEqual(discoveryTree({ framework: 'go', tests: null }), []);
});

const parents: Record<string, string> = {
  'tests/test_calc.py::TestC': 'tests/test_calc.py',
  'tests/test_calc.py::TestC::test_y': 'tests/test_calc.py::TestC',
  'ex.com/a.TestA': 'ex.com/a',
  'ex.com/b.TestB': 'ex.com/b',
};
const parentOf = (id: string) => parents[id];

test('planRuns: ids by run', () => {
  const cases: { name: string; fw: string; chosen: { id: string; kind: string }[]; want: unknown }[] = [
    { name: 'nothing chosen: the suite', fw: 'pytest', chosen: [], want: [{}] },
    {
      name: 'a class and its own test: the class',
      fw: 'pytest',
      chosen: [{ id: 'tests/test_calc.py::TestC::test_y', kind: 'test' }, { id: 'tests/test_calc.py::TestC', kind: 'class' }],
      want: [{ tests: ['tests/test_calc.py::TestC'] }],
    },
    {
      name: 'go: tests of two packages in one run',
      fw: 'go',
      chosen: [{ id: 'ex.com/a.TestA', kind: 'test' }, { id: 'ex.com/b.TestB', kind: 'test' }],
      want: [{ tests: ['ex.com/a.TestA', 'ex.com/b.TestB'] }],
    },
    {
      name: 'go: a whole package beside another package\'s test: two runs',
      fw: 'go',
      chosen: [{ id: 'ex.com/a', kind: 'package' }, { id: 'ex.com/b.TestB', kind: 'test' }, { id: 'ex.com/a.TestA', kind: 'test' }],
      want: [{ tests: ['ex.com/a'] }, { tests: ['ex.com/b.TestB'] }],
    },
  ];
  for (const c of cases) assert.deepEqual(planRuns(c.chosen, c.fw, parentOf), c.want, c.name);
});

test('parentId places results the tree lacks', () => {
  assert.equal(parentId('ex.com/calc.TestTable/ok', 'go'), 'ex.com/calc.TestTable');
  assert.equal(parentId('ex.com/calc.TestTable/a/b', 'go'), 'ex.com/calc.TestTable/a');
  assert.equal(parentId('ex.com/calc.TestAdd', 'go'), 'ex.com/calc');
  assert.equal(parentId('ex.com/calc', 'go'), undefined);
  assert.equal(parentId('t.py::TestC::test_p[a::b]', 'pytest'), 't.py::TestC');
  assert.equal(parentId('t.py', 'pytest'), undefined);
  assert.equal(leafLabel('TestTable/ok'), 'ok');
});

test('debugTestParams: debugpy runs pytest, delve one package', () => {
  assert.deepEqual(debugTestParams('pytest', [{ id: 't.py::test_a', kind: 'test' }], '/w'), { adapter: 'debugpy', test: true, workspace: '/w', tests: ['t.py::test_a'] });
  assert.deepEqual(debugTestParams('pytest', []), { adapter: 'debugpy', test: true });
  assert.deepEqual(debugTestParams('go', [{ id: 'ex.com/a', kind: 'package' }, { id: 'ex.com/a.TestA', kind: 'test' }]), { adapter: 'delve', test: true, tests: ['ex.com/a', 'ex.com/a.TestA'] });
  assert.throws(() => debugTestParams('go', [{ id: 'ex.com/a.TestA', kind: 'test' }, { id: 'ex.com/b.TestB', kind: 'test' }]), /one package/);
  assert.throws(() => debugTestParams('go', []), /one package/);
  assert.throws(() => debugTestParams('jest', []), /pytest and go/);
});

test('runTests sends the planned requests and stops when cancelled', async () => {
  const sent: object[] = [];
  let cancelled = false;
  const cancel: Cancel = { get isCancellationRequested() { return cancelled; }, onCancellationRequested: () => ({ dispose() {} }) };
  const berth: Requester = {
    async request<R>(method: string, params: object): Promise<R> {
      assert.equal(method, 'berth/test');
      sent.push(params);
      cancelled = true; // the user pressed Stop during the first run
      return { pid: `p${sent.length}`, framework: 'go', code: 0, summary: { passed: 1, failed: 0, skipped: 0, errors: 0, durationMs: 1 }, tests: [] } as R;
    },
  };
  const seen: TestResult[] = [];
  const chosen = [{ id: 'ex.com/a', kind: 'package' }, { id: 'ex.com/b.TestB', kind: 'test' }];
  await runTests(berth, { workspace: '/w' }, 'go', chosen, parentOf, (r) => seen.push(r), cancel);
  assert.deepEqual(sent, [{ workspace: '/w', framework: 'go', tests: ['ex.com/a'] }]);
  assert.equal(seen.length, 1);
});

test('go results stream from the run output', () => {
  const live = new GoLiveResults();
  assert.deepEqual(live.feed('=== RUN   TestAdd\n--- PASS: TestAdd (0.00s)\n--- FA'), [{ name: 'TestAdd', status: 'passed' }]);
  assert.deepEqual(live.feed('IL: TestT (0.01s)\n    --- SKIP: TestT/ok (0.00s)\nok  \tex.com/a\t0.1s\n'), [
    { name: 'TestT', status: 'failed' },
    { name: 'TestT/ok', status: 'skipped' },
  ]);
  const known = ['ex.com/a', 'ex.com/a.TestAdd', 'ex.com/b.TestAdd', 'ex.com/b.TestOnlyB'];
  assert.equal(liveGoId('TestAdd', known, []), undefined); // in two packages
  assert.equal(liveGoId('TestAdd', known, ['ex.com/b']), 'ex.com/b.TestAdd');
  assert.equal(liveGoId('TestOnlyB', known, []), 'ex.com/b.TestOnlyB');
  assert.equal(liveGoId('TestNone', known, []), undefined);
});
