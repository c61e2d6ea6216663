// The "Forward Port" input.

export interface ForwardSpec {
  containerPort: number;
  containerHost?: string;
  hostPort?: number;
}

function port(s: string, what: string, min: number): number {
  if (!/^\d+$/.test(s)) throw new Error(`${what}: "${s}" is not a port number`);
  const n = Number(s);
  if (n < min || n > 65535) throw new Error(`${what}: ${n} out of range ${min}-65535`);
  return n;
}

/**
 * Parses "PORT", "HOSTPORT:PORT" (docker's -p order: host first) or
 * "HOSTPORT:CONTAINERHOST:PORT".
 */
export function parseForward(input: string): ForwardSpec {
  const parts = input.trim().split(':');
  if (parts.length === 1 && parts[0] !== '') {
    return { containerPort: port(parts[0], 'container port', 1) };
  }
  if (parts.length === 2) {
    const hostPort = port(parts[0], 'host port', 0);
    const out: ForwardSpec = { containerPort: port(parts[1], 'container port', 1) };
    if (hostPort !== 0) out.hostPort = hostPort;
    return out;
  }
  if (parts.length === 3 && parts[1] !== '') {
    const hostPort = port(parts[0], 'host port', 0);
    const out: ForwardSpec = { containerPort: port(parts[2], 'container port', 1), containerHost: parts[1] };
    if (hostPort !== 0) out.hostPort = hostPort;
    return out;
  }
  throw new Error(`"${input}": use PORT, HOSTPORT:PORT or HOSTPORT:HOST:PORT`);
}

/** Validation message for an input box, or undefined when fine. */
export function validateForward(input: string): string | undefined {
  try {
    parseForward(input);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
