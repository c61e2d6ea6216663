// Wire types of berth's protocol (docs/protocol.md), as far as the
// extension uses them. Plain TypeScript: no vscode import here.

export interface Mount {
  host: string;
  container: string;
}

export interface AgentStatus {
  enabled: boolean;
  reason?: string;
}

export interface HookRun {
  hook: string;
  name?: string;
  pid?: string;
  code: number;
  error?: string;
}

export interface ForwardResult {
  tunnelId: string;
  host: string;
  hostPort: number;
}

export interface Instance {
  workspace: string;
  backend: string;
  id: string;
  name: string;
  image: string;
  state: string; // "running" | "stopped"
  workdir: string;
  mounts: Mount[] | null;
  created: boolean;
  agent?: AgentStatus;
  stale?: boolean;
  configSource?: string;
  configFile?: string;
  buildPid?: string;
  hooks?: HookRun[];
  forwarded?: ForwardResult[];
}

export interface InitializeResult {
  serverInfo?: { name: string; version?: string };
  capabilities?: {
    berth?: {
      backends?: string[];
      backend?: string;
      methods?: string[];
      defaultWorkspace?: string;
      agent?: boolean;
      agentReason?: string;
    };
  };
}

export interface ExecParams {
  workspace?: string;
  argv: string[];
  cwd?: string;
  env?: Record<string, string>;
  user?: string;
  stdin?: boolean;
  kind?: 'run' | 'test' | 'lint' | 'debug' | 'os';
  mapPaths?: boolean;
  tty?: boolean;
  cols?: number;
  rows?: number;
}

export interface OutputParams {
  pid: string;
  stream: 'stdout' | 'stderr' | string;
  text: string;
}

export interface ExitParams {
  pid: string;
  code: number;
  signal?: string;
  reason?: string;
}

export interface ConfigChangedParams {
  workspace: string;
  files: string[];
}

export interface Location {
  uri: string;
  line: number; // 1-based
}

export type TestStatus = 'passed' | 'failed' | 'skipped' | 'error';

export interface TestInfo {
  id: string;
  name: string;
  status: TestStatus | string;
  durationMs: number;
  message?: string;
  location?: Location;
}

export interface TestSummary {
  passed: number;
  failed: number;
  skipped: number;
  errors: number;
  durationMs: number;
}

export interface TestResult {
  pid: string;
  framework: string;
  code: number;
  summary: TestSummary;
  tests: TestInfo[] | null;
}

export interface TestParams {
  workspace?: string;
  framework?: string;
  args?: string[];
  files?: string[];
  /** Test ids to run; they replace files. */
  tests?: string[];
}

export type TestKind = 'file' | 'class' | 'test' | 'package';

/** A node of berth/testDiscover's tree. */
export interface DiscoveredTest {
  id: string;
  name: string;
  kind: TestKind | string;
  parent?: string;
  location?: Location;
}

export interface TestDiscoverResult {
  framework: string;
  tests: DiscoveredTest[] | null;
}

/** A berth/tunnels entry (and a berth/ports forward). */
export interface TunnelInfo {
  tunnelId: string;
  workspace: string;
  direction: 'forward' | 'reverse' | string;
  host?: string;
  hostPort?: number;
  hostSocket?: string;
  containerHost: string;
  containerPort: number;
  active: number;
  /** An auto-forward: opened by berth for a detected port. */
  auto?: boolean;
}

export type OnAutoForward = 'notify' | 'openBrowser' | 'openBrowserOnce' | 'openPreview' | 'silent' | 'ignore';

/** A port listening in the container (berth/ports, berth/portsChanged). */
export interface Port {
  port: number;
  bindAddress: string;
  process?: { pid: number; name: string };
  label?: string;
  onAutoForward: OnAutoForward | string;
  /** The auto-forward carrying it, if any. */
  tunnelId?: string;
  hostPort?: number;
}

export interface PortsResult {
  ports: Port[] | null;
  forwards: TunnelInfo[] | null;
}

export interface PortsChangedParams {
  workspace: string;
  ports: Port[] | null;
}

/** LSP's window/showDocument params. */
export interface ShowDocumentParams {
  uri: string;
  external?: boolean;
  takeFocus?: boolean;
  selection?: unknown;
}

export interface LintResult {
  pid: string;
  linter: string;
  code: number;
  files: number;
  diagnostics: number;
  errors: number;
  warnings: number;
  cleared: number;
  unmapped: number;
}

export interface DebugParams {
  workspace?: string;
  adapter: string;
  program?: string;
  module?: string;
  args?: string[];
  cwd?: string;
  env?: Record<string, string>;
  stopOnEntry?: boolean;
  justMyCode?: boolean;
  command?: string[];
  port?: number;
  connectBack?: { hostPort: number };
  /** Debug tests: pytest under debugpy, or dlv test. */
  test?: boolean;
  /** With test: the test ids, as berth/test takes them. */
  tests?: string[];
}

export interface DebugResult {
  pid: string;
  host?: string;
  port?: number;
  tunnelId: string;
  attach?: Record<string, unknown>;
  connectBack?: { containerHost: string; containerPort: number };
}

/** berth's stable error codes (docs/protocol.md, Errors). */
export const ErrorCodes = {
  BackendUnavailable: -32010,
  ImageNotFound: -32011,
  NoSuchProcess: -32012,
  NoWorkspace: -32013,
  InstanceNotFound: -32014,
  CommandNotFound: -32015,
  ProcessExited: -32016,
  ForeignInstance: -32017,
  NotSupported: -32018,
  ShuttingDown: -32019,
  InstanceNotRunning: -32020,
  NeedsAgent: -32021,
  NoSuchTunnel: -32022,
  BindFailed: -32023,
  AgentLost: -32024,
  Untrusted: -32029,
  RefusedPath: -32030,
  RequestCancelled: -32800,
} as const;
