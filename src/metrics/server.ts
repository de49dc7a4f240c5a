import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ConfigInvalidError } from '../errors.ts'
import { formatHostPort, parseHostPort } from './address.ts'
import type { EngineMetrics } from './collect.ts'

/** Scrapes answered at once; one more gets 503 (a scraper asks every few seconds, not in bursts). */
export const MAX_SCRAPES = 4
/** Sockets open at once: scrapers keep a connection alive, a few of them is plenty. */
export const MAX_SOCKETS = 16
/** An idle kept-alive socket is closed after this long; a request must be read within REQUEST_MS. */
const KEEP_ALIVE_MS = 5_000
const REQUEST_MS = 10_000

/**
 * The endpoint that serves `GET /metrics` (`HEAD` too) on one address and nothing else: any
 * other path is 404, another method 405. Bounded: at most MAX_SOCKETS sockets, MAX_SCRAPES
 * answers being built at once, idle sockets closed after KEEP_ALIVE_MS.
 */
export class MetricsServer {
  readonly #server: Server
  /** Where it listens, as `host:port` (the port chosen when the option asked for 0). */
  readonly address: string

  private constructor(server: Server, address: string) {
    this.#server = server
    this.address = address
  }

  static async start(listen: string, metrics: EngineMetrics): Promise<MetricsServer> {
    const at = parseHostPort(listen)
    if (at === undefined)
      throw new ConfigInvalidError(`metrics.listen must be host:port, got ${JSON.stringify(listen)}`)
    let scraping = 0
    const server = createServer(
      { keepAliveTimeout: KEEP_ALIVE_MS, requestTimeout: REQUEST_MS, headersTimeout: REQUEST_MS },
      (req, res) => {
        const path = (req.url ?? '').split('?')[0]
        if (path !== '/metrics') {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n')
          return
        }
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n')
          return
        }
        if (scraping >= MAX_SCRAPES) {
          res
            .writeHead(503, { 'retry-after': '1', 'content-type': 'text/plain' })
            .end('too many scrapes at once\n')
          return
        }
        scraping++
        metrics.text().then(
          (text) => {
            scraping--
            res.writeHead(200, { 'content-type': metrics.registry.contentType })
            res.end(req.method === 'HEAD' ? undefined : text)
          },
          (err: unknown) => {
            scraping--
            res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`)
          },
        )
      },
    )
    server.maxConnections = MAX_SOCKETS
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error): void => {
        reject(
          new ConfigInvalidError(`metrics.listen ${listen}: cannot listen there (${err.message})`, {
            cause: err,
          }),
        )
      }
      server.once('error', failed)
      server.listen(at.port, at.host, () => {
        server.off('error', failed)
        resolve()
      })
    })
    const bound = server.address() as AddressInfo
    return new MetricsServer(server, formatHostPort({ host: bound.address, port: bound.port }))
  }

  /** Stops listening and closes every socket, scrapes in progress included. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    this.#server.closeAllConnections()
    await closed
  }
}
