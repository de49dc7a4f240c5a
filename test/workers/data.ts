/** Deterministic test inputs for the workers tests. */

/** Seeded test inputs (src/util/random.ts). */
import { mulberry32 as prng } from '../../src/util/random.ts'

export { prng }

export function randomData(n: number, seed = 1): Uint8Array {
  const r = prng(seed)
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (r() * 256) | 0
  return out
}

const WORDS = (
  'the of and to in is you that it he was for on are as with his they at be this have from or one had ' +
  'by word but not what all were we when your can said there use an each which she do how their if will ' +
  'up other about out many then them these so some her would make like him into time has look two more'
).split(' ')

/** Word salad with numbers and ids: lz4 ~0.65, zstd-1 ~0.45 of the plain size. */
export function textLike(n: number, seed = 1): Uint8Array {
  const r = prng(seed)
  const enc = new TextEncoder()
  const out = new Uint8Array(n)
  let i = 0
  while (i < n) {
    const x = r()
    let w: string
    if (x < 0.08) w = String(Math.floor(r() * 1e6))
    else if (x < 0.12) w = Math.floor(r() * 1e9).toString(36)
    else w = WORDS[Math.floor(r() * WORDS.length)]!
    const b = enc.encode(w + (r() < 0.07 ? '.\n' : ' '))
    out.set(b.subarray(0, n - i), i)
    i += b.length
  }
  return out
}

const METHODS = ['GET', 'GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE']
const ROUTES = [
  '/v1/users/',
  '/v1/orders/',
  '/v1/items/',
  '/v2/search?q=',
  '/static/img/',
  '/v1/sessions/',
  '/health',
]
const STATUS = ['200', '200', '200', '200', '200', '200', '201', '204', '304', '404', '500']
const LEVELS = ['INFO', 'INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR']
const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
  'curl/8.5.0',
  'python-requests/2.32.3',
  'Go-http-client/1.1',
]

/**
 * A service's access log: one request a line with a timestamp, level, host, method, route and
 * ids, status, duration, client address, user agent and request id: compressible data of a
 * common kind (logs, like CSV or JSON dumps); zstd-1 keeps ~0.19 of it, about what it keeps of
 * source code.
 */
export function logLines(n: number, seed = 1): Uint8Array {
  const r = prng(seed)
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!
  const out = new Uint8Array(n)
  let ms = Date.UTC(2026, 11, 6) + seed * 3_600_000
  let i = 0
  while (i < n) {
    ms += Math.floor(r() * 40)
    const route = pick(ROUTES)
    const id = route === '/health' ? '' : String(Math.floor(r() * 100_000))
    const line =
      `${new Date(ms).toISOString()} ${pick(LEVELS)} api-${Math.floor(r() * 8)} ${pick(METHODS)} ${route}${id} ` +
      `${pick(STATUS)} ${(r() * 250).toFixed(1)}ms 10.0.${Math.floor(r() * 16)}.${Math.floor(r() * 256)} ` +
      `"${pick(AGENTS)}" req=${Math.floor(r() * 2 ** 32)
        .toString(16)
        .padStart(8, '0')}\n`
    for (let k = 0; k < line.length && i < n; k++) out[i++] = line.charCodeAt(k)
  }
  return out
}
