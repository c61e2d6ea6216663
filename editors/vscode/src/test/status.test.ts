import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeInstance, formatStatus } from '../logic/status';
import type { Instance } from '../logic/wire';

const inst: Instance = {
  workspace: '/home/me/src/myproject',
  backend: 'docker',
  id: '532cc01db3ae',
  name: 'berth-myproject-9d56c2713086',
  image: 'debian:bookworm-slim',
  state: 'running',
  workdir: '/workspaces/myproject',
  mounts: [{ host: '/home/me/src/myproject', container: '/workspaces/myproject' }],
  created: false,
  agent: { enabled: true },
};

test('no container', () => {
  const v = formatStatus(null);
  assert.equal(v.kind, 'none');
  assert.match(v.text, /berth: no container$/);
  assert.equal(formatStatus(undefined).kind, 'none');
});

test('running, stopped, stale', () => {
  assert.match(formatStatus(inst).text, /berth: running$/);
  assert.equal(formatStatus(inst).kind, 'running');
  assert.match(formatStatus(inst).tooltip, /berth-myproject-9d56c2713086 \(docker\)/);
  assert.match(formatStatus({ ...inst, state: 'stopped' }).text, /berth: stopped$/);
  const stale = formatStatus({ ...inst, stale: true, state: 'stopped' });
  assert.equal(stale.kind, 'stale');
  assert.match(stale.text, /berth: stale$/);
  assert.match(stale.tooltip, /rebuild/);
});

test('agent reason and config in tooltip', () => {
  const v = formatStatus({ ...inst, agent: { enabled: false, reason: 'disabled' }, configSource: 'devcontainer.json', configFile: '/x/.devcontainer/devcontainer.json' });
  assert.match(v.tooltip, /agent: off \(disabled\)/);
  assert.match(v.tooltip, /config: devcontainer.json \(\/x\/.devcontainer\/devcontainer.json\)/);
});

test('error', () => {
  const v = formatStatus(undefined, 'backend unavailable');
  assert.equal(v.kind, 'error');
  assert.match(v.tooltip, /backend unavailable/);
});

test('describeInstance', () => {
  assert.deepEqual(describeInstance({ ...inst, stale: true }), {
    label: 'berth-myproject-9d56c2713086',
    description: 'running, stale · docker',
    detail: '/home/me/src/myproject · debian:bookworm-slim',
  });
});
