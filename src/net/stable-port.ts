/**
 * A restarted node with a data folder listens where it listened before, so the tickets it
 * printed still lead to it (its peer id comes from the same folder, identity.ts). The TCP ports
 * it was given for its `/tcp/0` listen addresses (one per family) are kept in
 * `<dataDir>/listen-port`; the next start asks for those ports. When something else holds one it
 * takes free ones for that run (its tickets name them) and says so, but keeps the file as it
 * was: the tickets printed before work again at the first start that finds the ports free.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { isRelayedAddress } from './addresses.ts'
import type { ResolvedNodeOptions } from './options.ts'

const PORT_FILE = 'listen-port'

/**
 * `listen` with each `/tcp/0` replaced by the port kept in `dataDir` for its family (a file of
 * `ip4 <port>` / `ip6 <port>` lines; a bare port from an older haul applies to both); undefined
 * when none is kept.
 */
export async function rememberedListen(
  dataDir: string,
  listen: readonly string[],
): Promise<string[] | undefined> {
  const text = await readFile(join(dataDir, PORT_FILE), 'utf8').catch(() => undefined)
  if (text === undefined || !listen.some((a) => /\/tcp\/0$/.test(a))) return undefined
  const ports = new Map<string, number>()
  for (const line of text.split('\n')) {
    const [a, b] = line.trim().split(/\s+/)
    const [family, port] = b === undefined ? ['*', Number(a)] : [a!, Number(b)]
    if (Number.isSafeInteger(port) && port >= 1 && port <= 65535) ports.set(family, port)
  }
  if (ports.size === 0) return undefined
  return listen.map((a) => {
    const port = ports.get(familyOf(a)) ?? ports.get('*')
    return port === undefined ? a : a.replace(/\/tcp\/0$/, `/tcp/${port}`)
  })
}

function familyOf(addr: string): string {
  return addr.startsWith('/ip6/') ? 'ip6' : 'ip4'
}

/** Keeps the TCP port of the node's first listening address of each family for the next start. */
export async function rememberPort(dataDir: string, addrs: readonly string[]): Promise<void> {
  const ports = new Map<string, string>()
  // A relayed address names the relay's port, not ours.
  for (const a of addrs) {
    const port = /\/tcp\/(\d+)/.exec(a)?.[1]
    if (isRelayedAddress(a) || port === undefined || ports.has(familyOf(a))) continue
    ports.set(familyOf(a), port)
  }
  if (ports.size === 0) return
  const tmp = join(dataDir, `.${PORT_FILE}.${process.pid}.tmp`)
  // Best effort: a folder that cannot keep it costs a new ticket at the next start, nothing more.
  await writeFile(tmp, [...ports].map(([family, port]) => `${family} ${port}\n`).join(''))
    .then(() => rename(tmp, join(dataDir, PORT_FILE)))
    .catch(() => {})
}

/**
 * Starts a node with `start`; with a data folder, on the port it had before where that is free,
 * so a restarted sender (or relay) answers the tickets (or addresses) it printed.
 */
export async function startOnStablePort(
  node: ResolvedNodeOptions,
  start: (o: ResolvedNodeOptions) => Promise<Libp2p>,
): Promise<Libp2p> {
  const dataDir = node.dataDir
  if (dataDir === undefined) return start(node)
  const again = await rememberedListen(dataDir, node.listen)
  if (again === undefined) {
    const libp2p = await start(node)
    await rememberPort(
      dataDir,
      libp2p.getMultiaddrs().map((ma) => ma.toString()),
    )
    return libp2p
  }
  const kept = await start({ ...node, listen: again }).catch(() => undefined)
  if (kept !== undefined) return kept
  const libp2p = await start(node)
  const now = libp2p.getMultiaddrs().map((ma) => ma.toString())
  process.emitWarning(
    `could not listen on the ports this data folder's earlier tickets and addresses name (${portsOf(again)}): another program holds one. Listening on ${portsOf(now)} for this run (its tickets name those); the earlier tickets work again once their ports are free and haul starts again`,
    'HaulWarning',
  )
  return libp2p
}

/** The TCP ports in `addrs`, for a message. */
function portsOf(addrs: readonly string[]): string {
  const ports = new Set(addrs.filter((a) => !isRelayedAddress(a)).map((a) => /\/tcp\/(\d+)/.exec(a)?.[1]))
  ports.delete(undefined)
  return [...ports].map((p) => `tcp ${p}`).join(', ') || 'none'
}
