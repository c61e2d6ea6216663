import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NO_FILE, buildTestTree, fileLabel, filesForRun, lineRange, outcomeOf, summaryText } from '../logic/tests';
import type { TestResult } from '../logic/wire';

const res: TestResult = {
  pid: 'p4',
  framework: 'pytest',
  code: 1,
  summary: { passed: 3, failed: 2, skipped: 1, errors: 1, durationMs: 41 },
  tests: [
    { id: 'tests/test_calc.py::test_add', name: 'test_add', status: 'passed', durationMs: 1, location: { uri: 'file:///home/me/src/pyproj/tests/test_calc.py', line: 8 } },
    { id: 'tests/test_calc.py::test_add_wrong', name: 'test_add_wrong', status: 'failed', durationMs: 1, message: 'AssertionError: assert 5 == 6', location: { uri: 'file:///home/me/src/pyproj/tests/test_calc.py', line: 21 } },
    { id: 'test_x.py::test_skip', name: 'test_skip', status: 'skipped', durationMs: 0, location: { uri: 'file:///home/me/src/pyproj/test_x.py', line: 1 } },
    { id: 'test_x.py::test_fixture', name: 'test_fixture', status: 'error', durationMs: 0, message: 'fixture boom' },
    { id: 'tests/test_calc.py::test_add', name: 'test_add', status: 'passed', durationMs: 2, location: { uri: 'file:///home/me/src/pyproj/tests/test_calc.py', line: 8 } },
  ],
};

test('outcomes', () => {
  assert.equal(outcomeOf('passed'), 'passed');
  assert.equal(outcomeOf('failed'), 'failed');
  assert.equal(outcomeOf('skipped'), 'skipped');
  assert.equal(outcomeOf('error'), 'errored');
  assert.equal(outcomeOf('weird'), 'errored');
});

test('1-based lines become 0-based ranges', () => {
  assert.deepEqual(lineRange(1), { startLine: 0, startCharacter: 0, endLine: 0, endCharacter: 0 });
  assert.deepEqual(lineRange(21).startLine, 20);
  assert.deepEqual(lineRange(0).startLine, 0);
});

test('tree groups by file, no-location last, duplicate ids made unique', () => {
  const tree = buildTestTree(res, '/home/me/src/pyproj');
  assert.deepEqual(tree.map((f) => f.label), ['tests/test_calc.py', 'test_x.py', '(no location)']);
  assert.equal(tree[2].id, NO_FILE);
  const calc = tree[0];
  assert.equal(calc.uri, 'file:///home/me/src/pyproj/tests/test_calc.py');
  assert.deepEqual(calc.tests.map((t) => t.id), ['tests/test_calc.py::test_add', 'tests/test_calc.py::test_add_wrong', 'tests/test_calc.py::test_add#2']);
  const wrong = calc.tests[1];
  assert.equal(wrong.outcome, 'failed');
  assert.equal(wrong.message, 'AssertionError: assert 5 == 6');
  assert.equal(wrong.range?.startLine, 20);
  assert.equal(tree[2].tests[0].outcome, 'errored');
  assert.equal(tree[2].tests[0].uri, undefined);
  assert.equal(tree[2].tests[0].range, undefined);
});

test('empty and null tests', () => {
  assert.deepEqual(buildTestTree({ ...res, tests: null }), []);
  assert.deepEqual(buildTestTree({ ...res, tests: [] }), []);
});

test('labels', () => {
  assert.equal(fileLabel('file:///home/me/src/p/a%20b.py', '/home/me/src/p'), 'a b.py');
  assert.equal(fileLabel('file:///elsewhere/x.py', '/home/me/src/p'), '/elsewhere/x.py');
  assert.equal(fileLabel('file:///c%3A/Users/me/p/x.py', 'C:\\Users\\me\\p'), 'x.py');
});

test('summary text', () => {
  assert.equal(summaryText(res.summary), '3 passed, 2 failed, 1 skipped, 1 error in 41 ms');
  assert.equal(summaryText({ passed: 2, failed: 0, skipped: 0, errors: 0, durationMs: 5 }), '2 passed in 5 ms');
});

test('files for a run', () => {
  assert.deepEqual(filesForRun(['/p/a_test.go', '/p/b_test.go', '/p/t/test_x.py', '/p/t/test_x.py']), ['/p', '/p/t/test_x.py']);
});
