import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandLineError, commandArgv, joinCommandLine, splitCommandLine } from '../logic/cmdline';

test('splits on whitespace', () => {
  assert.deepEqual(splitCommandLine('python3  main.py\t--x 1 '), ['python3', 'main.py', '--x', '1']);
  assert.deepEqual(splitCommandLine(''), []);
  assert.deepEqual(splitCommandLine('   '), []);
});

test('quotes and escapes', () => {
  assert.deepEqual(splitCommandLine(`echo 'a b' "c d" e\\ f`), ['echo', 'a b', 'c d', 'e f']);
  assert.deepEqual(splitCommandLine(`echo "say \\"hi\\"" 'it''s'`), ['echo', 'say "hi"', 'its']);
  assert.deepEqual(splitCommandLine(`a"b"'c'd`), ['abcd']);
  assert.deepEqual(splitCommandLine(`x "" ''`), ['x', '', '']);
  assert.deepEqual(splitCommandLine(`"a\\nb"`), ['a\\nb']);
});

test('unterminated quotes', () => {
  assert.throws(() => splitCommandLine(`echo 'a`), CommandLineError);
  assert.throws(() => splitCommandLine(`echo "a`), CommandLineError);
});

test('join round-trips', () => {
  for (const argv of [['a', 'b c', "it's", ''], ['python3', '-c', 'print("x")'], ['--out=/tmp/x']]) {
    assert.deepEqual(splitCommandLine(joinCommandLine(argv)), argv);
  }
  assert.equal(joinCommandLine(['go', 'test', './...']), 'go test ./...');
});

test('commandArgv uses sh -c for shell syntax', () => {
  assert.deepEqual(commandArgv('ls -la'), ['ls', '-la']);
  assert.deepEqual(commandArgv('ls | wc -l'), ['sh', '-c', 'ls | wc -l']);
  assert.deepEqual(commandArgv('echo $HOME'), ['sh', '-c', 'echo $HOME']);
  assert.deepEqual(commandArgv('echo "$HOME"'), ['sh', '-c', 'echo "$HOME"']);
  assert.deepEqual(commandArgv("echo '$HOME | x'"), ['echo', '$HOME | x']);
  assert.deepEqual(commandArgv('  '), []);
});
