import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { defaultTokenPath, initializationOptions, parseAttachAddress, parseTcpAddress, resolveToken, serverCommand, shellCommand } from '../logic/settings';

test('initializationOptions keeps only set values', () => {
  assert.deepEqual(initializationOptions({}), {});
  assert.deepEqual(initializationOptions({ backend: '', image: '  ' }), {});
  assert.deepEqual(initializationOptions({ backend: 'incus', image: 'debian:bookworm-slim' }), {
    backend: 'incus',
    image: 'debian:bookworm-slim',
  });
  assert.deepEqual(initializationOptions({ backend: ' docker ' }), { backend: 'docker' });
});

test('initializationOptions sends trust only for a trusted workspace', () => {
  assert.deepEqual(initializationOptions({}, undefined, false), {});
  assert.deepEqual(initializationOptions({ image: 'x' }, undefined, true), { image: 'x', trust: true });
});

test('serverCommand defaults to berth --stdio', () => {
  assert.deepEqual(serverCommand({}), { command: 'berth', args: ['--stdio'] });
  assert.deepEqual(serverCommand({ path: '' }), { command: 'berth', args: ['--stdio'] });
  assert.deepEqual(serverCommand({ path: '/opt/berth/bin/berth' }), { command: '/opt/berth/bin/berth', args: ['--stdio'] });
});

test('parseTcpAddress', () => {
  assert.equal(parseTcpAddress(''), undefined);
  assert.equal(parseTcpAddress(undefined), undefined);
  assert.deepEqual(parseTcpAddress('127.0.0.1:7420'), { host: '127.0.0.1', port: 7420 });
  assert.deepEqual(parseTcpAddress('7420'), { host: '127.0.0.1', port: 7420 });
  assert.deepEqual(parseTcpAddress(':7420'), { host: '127.0.0.1', port: 7420 });
  assert.deepEqual(parseTcpAddress('localhost:1'), { host: 'localhost', port: 1 });
  assert.deepEqual(parseTcpAddress('[::1]:7420'), { host: '::1', port: 7420 });
  assert.deepEqual(parseTcpAddress('tcp://h:9'), { host: 'h', port: 9 });
  assert.throws(() => parseTcpAddress('host:'), /not HOST:PORT/);
  assert.throws(() => parseTcpAddress('host:abc'), /not HOST:PORT/);
  assert.throws(() => parseTcpAddress('h:70000'), /out of range/);
  assert.throws(() => parseTcpAddress('0'), /out of range/);
});

test('initializationOptions carries the token', () => {
  assert.deepEqual(initializationOptions({ image: 'x' }, 'tok'), { token: 'tok', image: 'x' });
  assert.deepEqual(initializationOptions({}, ''), {});
});

test('parseAttachAddress', () => {
  assert.equal(parseAttachAddress(''), undefined);
  assert.deepEqual(parseAttachAddress('unix:/run/user/1000/berth.sock'), { kind: 'unix', path: '/run/user/1000/berth.sock' });
  assert.deepEqual(parseAttachAddress('127.0.0.1:7420'), { kind: 'tcp', host: '127.0.0.1', port: 7420 });
  assert.deepEqual(parseAttachAddress('tcp:127.0.0.1:7420'), { kind: 'tcp', host: '127.0.0.1', port: 7420 });
  assert.deepEqual(parseAttachAddress('tcp://[::1]:9'), { kind: 'tcp', host: '::1', port: 9 });
  assert.throws(() => parseAttachAddress('unix:'), /unix:PATH/);
});

test('defaultTokenPath follows berth', () => {
  const home = '/home/me';
  assert.equal(defaultTokenPath(7420, { env: { XDG_RUNTIME_DIR: '/run/user/1000' }, platform: 'linux', home }), '/run/user/1000/berth/tcp-7420.token');
  assert.equal(defaultTokenPath(1, { env: {}, platform: 'linux', home }), '/home/me/.cache/berth/run/tcp-1.token');
  assert.equal(defaultTokenPath(1, { env: { XDG_CACHE_HOME: '/c' }, platform: 'linux', home }), '/c/berth/run/tcp-1.token');
  assert.equal(defaultTokenPath(1, { env: {}, platform: 'darwin', home }), '/home/me/Library/Caches/berth/run/tcp-1.token');
});

test('resolveToken: the setting, then BERTH_TOKEN, then the default file', async () => {
  const rt = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-token-'));
  try {
    fs.mkdirSync(path.join(rt, 'berth'), { mode: 0o700 });
    fs.writeFileSync(path.join(rt, 'berth', 'tcp-9.token'), 'default-token\n', { mode: 0o600 });
    const other = path.join(rt, 'other');
    fs.writeFileSync(other, ' file-token \n', { mode: 0o600 });
    const t = (env: NodeJS.ProcessEnv) => ({ env: { XDG_RUNTIME_DIR: rt, ...env }, platform: 'linux' as NodeJS.Platform, home: rt });
    assert.equal(await resolveToken('', 9, t({})), 'default-token');
    assert.equal(await resolveToken('', 9, t({ BERTH_TOKEN: 'env-token' })), 'env-token');
    assert.equal(await resolveToken(other, 9, t({ BERTH_TOKEN: 'env-token' })), 'file-token');
    await assert.rejects(resolveToken('', 10, t({})), /tcp-10\.token does not exist.*berth\.tokenFile/);
  } finally {
    fs.rmSync(rt, { recursive: true, force: true });
  }
});

test('shellCommand runs berth shell on the folder with the chosen backend and image', () => {
  assert.deepEqual(shellCommand({}, '/w'), { command: 'berth', args: ['--workspace', '/w', 'shell'] });
  assert.deepEqual(shellCommand({ path: ' /opt/berth ', backend: 'incus', image: ' x:1 ' }, '/w', true), {
    command: '/opt/berth',
    args: ['--workspace', '/w', '--backend', 'incus', '--image', 'x:1', '--trust', 'shell'],
  });
});
