// Status bar text from berth/status.

import type { Instance } from './wire';

export type StatusKind = 'running' | 'stopped' | 'stale' | 'none' | 'error' | 'starting';

export interface StatusView {
  kind: StatusKind;
  text: string;
  tooltip: string;
}

/**
 * Formats berth/status's answer. `inst` is the Instance, null for "no
 * container", and `error` is set when the request failed.
 */
export function formatStatus(inst: Instance | null | undefined, error?: string): StatusView {
  if (error !== undefined) {
    return { kind: 'error', text: '$(error) berth: error', tooltip: `berth: ${error}` };
  }
  if (!inst) {
    return { kind: 'none', text: '$(circle-slash) berth: no container', tooltip: 'No container for this workspace yet. Click to open it in a container.' };
  }
  const lines = [
    `${inst.name} (${inst.backend})`,
    `image: ${inst.image}`,
    `workspace: ${inst.workspace} → ${inst.workdir}`,
  ];
  if (inst.configSource) lines.push(`config: ${inst.configSource}${inst.configFile ? ` (${inst.configFile})` : ''}`);
  if (inst.agent && !inst.agent.enabled) lines.push(`agent: off${inst.agent.reason ? ` (${inst.agent.reason})` : ''}`);
  if (inst.stale) {
    lines.push('The configuration changed since the container was created: rebuild it.');
    return { kind: 'stale', text: '$(warning) berth: stale', tooltip: lines.join('\n') };
  }
  if (inst.state === 'running') {
    return { kind: 'running', text: '$(vm-running) berth: running', tooltip: lines.join('\n') };
  }
  return { kind: 'stopped', text: '$(vm-outline) berth: stopped', tooltip: lines.join('\n') };
}

/** One line describing an Instance, for messages and quick picks. */
export function describeInstance(inst: Instance): { label: string; description: string; detail: string } {
  const state = inst.stale ? `${inst.state}, stale` : inst.state;
  return {
    label: inst.name,
    description: `${state} · ${inst.backend}`,
    detail: `${inst.workspace} · ${inst.image}`,
  };
}
