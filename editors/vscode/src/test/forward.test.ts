import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseForward, validateForward } from '../logic/forward';

test('parseForward', () => {
  assert.deepEqual(parseForward('8080'), { containerPort: 8080 });
  assert.deepEqual(parseForward(' 8080 '), { containerPort: 8080 });
  assert.deepEqual(parseForward('9000:8080'), { containerPort: 8080, hostPort: 9000 });
  assert.deepEqual(parseForward('0:8080'), { containerPort: 8080 });
  assert.deepEqual(parseForward('9000:db:5432'), { containerPort: 5432, containerHost: 'db', hostPort: 9000 });
  assert.throws(() => parseForward(''), /use PORT/);
  assert.throws(() => parseForward('abc'), /not a port/);
  assert.throws(() => parseForward('0'), /out of range/);
  assert.throws(() => parseForward('70000'), /out of range/);
  assert.throws(() => parseForward('1:2:3:4'), /use PORT/);
});

test('validateForward', () => {
  assert.equal(validateForward('80'), undefined);
  assert.match(validateForward('x') ?? '', /not a port/);
});
