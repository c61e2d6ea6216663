// Routes berth/output and berth/exit notifications to whoever owns the pid.
// Output can arrive before its owner knows the pid (berth/test and
// berth/lint release their stream before answering; berth/up's build and
// hook pids are never claimed), so unclaimed events are buffered, bounded,
// and replayed on claim.

import type { ExitParams, OutputParams } from './wire';

export interface ProcessSink {
  output(stream: string, text: string): void;
  exit(p: ExitParams): void;
}

interface Pending {
  chunks: { stream: string; text: string }[];
  size: number;
  dropped: number;
  exit?: ExitParams;
}

export interface RouterOptions {
  /** Called for every event no sink has claimed yet (e.g. to log it). */
  unclaimed?: (pid: string, ev: { stream?: string; text?: string; exit?: ExitParams }) => void;
  /** Bytes of output kept per unclaimed pid (oldest dropped first). */
  maxBytesPerPid?: number;
  /** Unclaimed pids remembered (oldest forgotten first). */
  maxPids?: number;
}

export class ProcessRouter {
  private sinks = new Map<string, ProcessSink>();
  private pending = new Map<string, Pending>();
  private readonly maxBytes: number;
  private readonly maxPids: number;

  constructor(private readonly opts: RouterOptions = {}) {
    this.maxBytes = opts.maxBytesPerPid ?? 1 << 20;
    this.maxPids = opts.maxPids ?? 64;
  }

  /** Handles a berth/output notification. */
  output(p: OutputParams): void {
    const sink = this.sinks.get(p.pid);
    if (sink) {
      sink.output(p.stream, p.text);
      return;
    }
    this.opts.unclaimed?.(p.pid, { stream: p.stream, text: p.text });
    const pend = this.pendingFor(p.pid);
    pend.chunks.push({ stream: p.stream, text: p.text });
    pend.size += p.text.length;
    while (pend.size > this.maxBytes && pend.chunks.length > 1) {
      const c = pend.chunks.shift()!;
      pend.size -= c.text.length;
      pend.dropped += c.text.length;
    }
  }

  /** Handles a berth/exit notification. */
  exit(p: ExitParams): void {
    const sink = this.sinks.get(p.pid);
    if (sink) {
      this.sinks.delete(p.pid);
      sink.exit(p);
      return;
    }
    this.opts.unclaimed?.(p.pid, { exit: p });
    this.pendingFor(p.pid).exit = p;
  }

  /**
   * Makes `sink` the owner of pid, replaying what arrived before. Returns
   * how many characters of early output were dropped (over the bound).
   */
  claim(pid: string, sink: ProcessSink): number {
    const pend = this.pending.get(pid);
    this.pending.delete(pid);
    if (!pend) {
      this.sinks.set(pid, sink);
      return 0;
    }
    for (const c of pend.chunks) sink.output(c.stream, c.text);
    if (pend.exit) {
      sink.exit(pend.exit);
    } else {
      this.sinks.set(pid, sink);
    }
    return pend.dropped;
  }

  /** Stops routing pid to its sink (its events become unclaimed again). */
  release(pid: string): void {
    this.sinks.delete(pid);
  }

  /** Whether pid has a sink and has not exited. */
  isClaimed(pid: string): boolean {
    return this.sinks.has(pid);
  }

  /** Everything unclaimed is forgotten, and every sink gets `exit` with reason (berth went away). */
  reset(reason: string): void {
    const sinks = [...this.sinks.entries()];
    this.sinks.clear();
    this.pending.clear();
    for (const [pid, s] of sinks) s.exit({ pid, code: -1, reason });
  }

  private pendingFor(pid: string): Pending {
    let p = this.pending.get(pid);
    if (!p) {
      p = { chunks: [], size: 0, dropped: 0 };
      this.pending.set(pid, p);
      while (this.pending.size > this.maxPids) {
        const oldest = this.pending.keys().next().value as string;
        this.pending.delete(oldest);
      }
    }
    return p;
  }
}
