import { readFileSync } from 'node:fs'
import { isIPv4, isIPv6, type Socket } from 'node:net'
import { endianness } from 'node:os'

/**
 * How many bytes the kernel holds for a TCP socket that its peer has not acknowledged yet
 * (Linux: the `tx_queue` column of /proc/net/tcp and tcp6, the socket's `Send-Q` in `ss`). Node
 * has no call for it (no SIOCOUTQ), and its own counters stop where the kernel takes the bytes.
 *
 * Why it matters: the kernel's send buffer grows with the connection (to ~200 KB on a 0.5 Mbit/s
 * link, measured with `ss -tmi`), which on a slow link is seconds of bytes on their way out, of
 * which the process sees nothing move. Read only for a stream that has seen nothing move for a
 * while (stream-writer.ts), and at most once per SNAPSHOT_MS for the whole process.
 */

/** A snapshot of the tables serves every socket asked about within this long. */
const SNAPSHOT_MS = 100
const TABLES = ['/proc/net/tcp', '/proc/net/tcp6']

let snapshot: { at: number; queues: Map<string, number> } | undefined
let readable = process.platform === 'linux'

/**
 * The socket's unacknowledged bytes in the kernel (sent and unsent), or undefined where that
 * cannot be known (not Linux, /proc unreadable, the socket not connected or already gone).
 */
export function kernelUnacked(socket: Socket, now = performance.now()): number | undefined {
  if (!readable) return undefined
  const key = socketKey(socket)
  if (key === undefined) return undefined
  if (snapshot === undefined || now - snapshot.at >= SNAPSHOT_MS) {
    const queues = readTables()
    if (queues === undefined) return undefined
    snapshot = { at: now, queues }
  }
  return snapshot.queues.get(key)
}

function readTables(): Map<string, number> | undefined {
  const queues = new Map<string, number>()
  let any = false
  for (const table of TABLES) {
    let text: string
    try {
      text = readFileSync(table, 'latin1')
    } catch {
      continue
    }
    any = true
    parseTable(text, queues)
  }
  if (!any) readable = false
  return any ? queues : undefined
}

/**
 * Adds each line's `local-remote` addresses and tx_queue to `into`. A line:
 * `  12: 0100007F:C738 0100007F:92D7 01 0001A2B0:00000000 ...` (addresses in the kernel's hex).
 */
export function parseTable(text: string, into: Map<string, number>): void {
  let start = text.indexOf('\n') + 1
  while (start > 0 && start < text.length) {
    let end = text.indexOf('\n', start)
    if (end < 0) end = text.length
    const fields = text.slice(start, end).trim().split(/\s+/)
    start = end + 1
    const local = fields[1]
    const remote = fields[2]
    const queues = fields[4]
    if (local === undefined || remote === undefined || queues === undefined) continue
    const colon = queues.indexOf(':')
    if (colon < 0) continue
    into.set(`${local}-${remote}`, Number.parseInt(queues.slice(0, colon), 16))
  }
}

/** The socket's `local-remote` key in the tables' hex notation, or undefined. */
export function socketKey(socket: Socket): string | undefined {
  const { localAddress, localPort, remoteAddress, remotePort } = socket
  if (localAddress === undefined || remoteAddress === undefined) return undefined
  if (localPort === undefined || remotePort === undefined) return undefined
  const local = addressHex(localAddress)
  const remote = addressHex(remoteAddress)
  if (local === undefined || remote === undefined) return undefined
  return `${local}:${portHex(localPort)}-${remote}:${portHex(remotePort)}`
}

function portHex(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0')
}

const LITTLE_ENDIAN = endianness() === 'LE'

/**
 * An address as /proc/net/tcp{,6} print it: the raw bytes as 32-bit words in host order, so on
 * a little-endian machine each group of four bytes reversed.
 */
export function addressHex(address: string): string | undefined {
  let bytes: number[]
  if (isIPv4(address)) bytes = address.split('.').map(Number)
  else if (isIPv6(address)) {
    const parsed = ipv6Bytes(address)
    if (parsed === undefined) return undefined
    bytes = parsed
  } else return undefined
  let hex = ''
  for (let word = 0; word < bytes.length; word += 4) {
    for (let i = 0; i < 4; i++) {
      const byte = bytes[word + (LITTLE_ENDIAN ? 3 - i : i)]!
      hex += byte.toString(16).toUpperCase().padStart(2, '0')
    }
  }
  return hex
}

function ipv6Bytes(address: string): number[] | undefined {
  const zone = address.indexOf('%')
  let text = zone < 0 ? address : address.slice(0, zone)
  const tail: number[] = []
  const lastColon = text.lastIndexOf(':')
  const maybeV4 = text.slice(lastColon + 1)
  if (isIPv4(maybeV4)) {
    const [a, b, c, d] = maybeV4.split('.').map(Number)
    text = `${text.slice(0, lastColon + 1)}${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const words = (s: string): string[] => (s === '' ? [] : s.split(':'))
  const head = words(halves[0]!)
  const rest = halves.length === 2 ? words(halves[1]!) : []
  const fill = 8 - head.length - rest.length
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined
  const all = [...head, ...Array<string>(fill).fill('0'), ...rest]
  for (const w of all) {
    const v = Number.parseInt(w, 16)
    tail.push(v >> 8, v & 0xff)
  }
  return tail
}
