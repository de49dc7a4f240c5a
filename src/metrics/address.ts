/** The `host:port` a metrics endpoint listens on (`metrics.listen`, `--metrics`). */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/**
 * Reads `host:port`, `[v6]:port` included; undefined when `text` is not one. Port 0 asks the
 * system for a free port (`Engine.metricsAddress` then says which). The host is not resolved
 * here: a name that does not resolve fails when the engine starts listening.
 */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text)
  if (m === null) return undefined
  const port = Number(m[3])
  if (port > 65_535) return undefined
  return { host: m[1] ?? m[2]!, port }
}

/** `host:port` again, with brackets around an IPv6 host. */
export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
}
