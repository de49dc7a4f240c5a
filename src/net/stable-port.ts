/**
 * A restarted node with a data folder listens where it listened before, so the tickets it
 * printed still lead to it (its peer id comes from the same folder, identity.ts). The TCP port
 * it was given for a `/tcp/0` listen address is kept in `<dataDir>/listen-port`; the next start
 * asks for that port, and takes any free one (a new ticket then) when something else holds it.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import type { ResolvedNodeOptions } from './options.ts'

const PORT_FILE = 'listen-port'

/** `listen` with each `/tcp/0` replaced by the port kept in `dataDir`; undefined when none is kept. */
export async function rememberedListen(
  dataDir: string,
  listen: readonly string[],
): Promise<string[] | undefined> {
  const text = await readFile(join(dataDir, PORT_FILE), 'utf8').catch(() => undefined)
  const port = Number(text?.trim())
  if (!Number.isSafeInteger(port) || port < 1 || port > 65535) return undefined
  if (!listen.some((a) => /\/tcp\/0$/.test(a))) return undefined
  return listen.map((a) => a.replace(/\/tcp\/0$/, `/tcp/${port}`))
}

/** Keeps the TCP port of the node's first listening address for the next start. */
export async function rememberPort(dataDir: string, addrs: readonly string[]): Promise<void> {
  // A relayed address names the relay's port, not ours.
  const port = addrs
    .filter((a) => !a.includes('/p2p-circuit'))
    .map((a) => /\/tcp\/(\d+)/.exec(a)?.[1])
    .find((p) => p !== undefined)
  if (port === undefined) return
  const tmp = join(dataDir, `.${PORT_FILE}.${process.pid}.tmp`)
  // Best effort: a folder that cannot keep it costs a new ticket at the next start, nothing more.
  await writeFile(tmp, `${port}\n`)
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
  let libp2p: Libp2p | undefined
  if (again !== undefined) {
    // Taken by something else since: any free port, and a new ticket.
    libp2p = await start({ ...node, listen: again }).catch(() => undefined)
  }
  libp2p ??= await start(node)
  await rememberPort(
    dataDir,
    libp2p.getMultiaddrs().map((ma) => ma.toString()),
  )
  return libp2p
}
