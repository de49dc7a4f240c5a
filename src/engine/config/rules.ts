/**
 * The rules that tie options of the table (./table.ts) together. resolve.ts runs each once the
 * options it reads are resolved, after every option passed its own check.
 */
import { totalmem } from 'node:os'
import { multiaddr } from '@multiformats/multiaddr'
import { formatSize, maxChunkSize } from '../../chunking/params.ts'
import type { CrossRule } from './schema.ts'
import type { TableConfig } from './table.ts'

export const crossRules: readonly CrossRule<TableConfig>[] = [
  {
    paths: ['listen'],
    doc: 'a listen address is TCP (the one transport a node listens on; relays join through `relays`)',
    check: (c) => {
      const bad = c.listen.find((a) => !listensOnTcp(a))
      return bad === undefined
        ? undefined
        : `listen: ${JSON.stringify(bad)} is not a TCP address: haul listens on TCP only, e.g. /ip4/0.0.0.0/tcp/4001, /ip6/::/tcp/0 or /ip4/127.0.0.1/tcp/0 (port 0: any free port)`
    },
  },
  {
    paths: ['relays'],
    doc: 'a relay is named with its peer id (a reservation is made with a peer)',
    check: (c) => {
      const bad = c.relays.find((r) => !namesPeer(r))
      return bad === undefined
        ? undefined
        : `relays: ${JSON.stringify(bad)} must end in /p2p/<relay peer id> (the address "haul relay" prints)`
    },
  },
  {
    paths: ['dht.bootstrap'],
    doc: 'a bootstrap peer is named with its peer id (the DHT trusts what a connection proves)',
    check: (c) => {
      const bad = c.dht.bootstrap.find((r) => !namesPeer(r))
      return bad === undefined
        ? undefined
        : `dht.bootstrap: ${JSON.stringify(bad)} must end in /p2p/<peer id> (an address "haul send --dht" prints)`
    },
  },
  {
    paths: ['memoryBudget', 'chunking'],
    doc: 'the budget holds at least 4 of the largest chunk',
    check: (c) => {
      const chunk = maxChunkSize(c.chunking)
      return c.memoryBudget >= 4 * chunk
        ? undefined
        : `memoryBudget (${formatSize(c.memoryBudget)}) must hold at least 4 of the largest chunk (${formatSize(chunk)}): give it ${formatSize(4 * chunk)} or more`
    },
  },
  {
    paths: ['memoryBudget'],
    doc: "the budget is at most the machine's memory (`os.totalmem()`)",
    check: (c) => {
      // A budget the machine cannot hold is no bound: the chunk cache and the windows follow it.
      const machine = totalmem()
      return c.memoryBudget <= machine
        ? undefined
        : `memoryBudget (${formatSize(c.memoryBudget)}) is more than this machine's memory (${formatSize(machine)}): give it less (the default, 16MiB, is enough for full speed)`
    },
  },
  {
    paths: ['fetch.windowBytes', 'chunking'],
    doc: 'the fetch window holds at least one chunk',
    check: (c) => {
      const chunk = maxChunkSize(c.chunking)
      return c.fetch.windowBytes >= chunk
        ? undefined
        : `fetch.windowBytes (${c.fetch.windowBytes}) must hold at least one chunk (${chunk} bytes)`
    },
  },
  {
    paths: ['server.maxFrame', 'chunking'],
    doc: 'a frame fits the largest chunk and its message header',
    check: (c) => {
      const chunk = maxChunkSize(c.chunking)
      return c.server.maxFrame >= chunk + 1024
        ? undefined
        : `server.maxFrame (${c.server.maxFrame}) must exceed the largest chunk (${chunk} bytes) by at least 1024`
    },
  },
  {
    paths: ['sessions.idleMs', 'timeouts.idleMs'],
    doc: "a kept stream is closed before the stream's own idle timeout fires",
    check: (c) =>
      c.sessions.idleMs < c.timeouts.idleMs
        ? undefined
        : `sessions.idleMs (${c.sessions.idleMs}) must be less than timeouts.idleMs (${c.timeouts.idleMs})`,
  },
  {
    paths: ['retry.baseDelayMs', 'retry.maxDelayMs'],
    doc: 'the delay ceiling is at least the first delay',
    check: (c) =>
      c.retry.maxDelayMs >= c.retry.baseDelayMs
        ? undefined
        : `retry.maxDelayMs (${c.retry.maxDelayMs}) must be >= retry.baseDelayMs (${c.retry.baseDelayMs})`,
  },
  {
    paths: ['network.admission.maxConnectionsPerAddress', 'network.admission.maxPendingPerAddress'],
    doc: 'sockets in their handshake count as connections of their address',
    check: ({ network: { admission: a } }) =>
      a.maxConnectionsPerAddress >= a.maxPendingPerAddress
        ? undefined
        : `network.admission.maxConnectionsPerAddress (${a.maxConnectionsPerAddress}) must be at least network.admission.maxPendingPerAddress (${a.maxPendingPerAddress}): pending ones count`,
  },
]

/** A direct address ending in the peer it reaches. */
function namesPeer(addr: string): boolean {
  return !addr.includes('/p2p-circuit') && /\/p2p\/[^/]+$/.test(addr)
}

/**
 * What the TCP transport listens on (@libp2p/tcp's listenFilter): an IP address or a DNS name, a
 * TCP port, perhaps the node's own /p2p; or a unix socket. Anything else fails only once the
 * node starts ("No transport was configured").
 */
function listensOnTcp(addr: string): boolean {
  const names = multiaddr(addr)
    .getComponents()
    .map((c) => c.name)
  if (names[0] === 'unix') return true
  const [host, port, ...rest] = names
  return (
    ['ip4', 'ip6', 'dns', 'dns4', 'dns6', 'dnsaddr'].includes(host ?? '') &&
    port === 'tcp' &&
    (rest.length === 0 || (rest.length === 1 && rest[0] === 'p2p'))
  )
}
